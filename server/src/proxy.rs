//! What a reverse proxy in front of the server says about the request as
//! the visitor made it: the scheme (`X-Forwarded-Proto`) and the host
//! (`X-Forwarded-Host`), each its first (client-side) value; and from them
//! (or `--public-url`) the API root pages call.

use poem::Request;
use poem::http::{HeaderValue, header};

/// The first of a header's comma-separated values, trimmed.
fn first(value: &HeaderValue) -> Option<&str> {
    value.to_str().ok()?.split(',').next().map(str::trim)
}

/// Whether the request reached us over HTTPS: the server serves HTTPS
/// itself (`--tls-cert`), or a proxy says the visitor used it.
pub fn is_https(request: &Request) -> bool {
    request.scheme().as_str() == "https"
        || request
            .headers()
            .get("x-forwarded-proto")
            .and_then(first)
            .is_some_and(|v| v.eq_ignore_ascii_case("https"))
}

/// The API root pages should call: `public_url` (`--public-url`) when the
/// server has one, else [`request_root`].
pub fn api_root(public_url: Option<&str>, request: &Request) -> String {
    public_url.map_or_else(|| request_root(request), str::to_owned)
}

/// Whether `host` is a host as a URL names one: a name or IPv4 address
/// (letters, digits, `-`, `.`) or a bracketed IPv6 address, then maybe a
/// port (1 to 65535). Anything else (quotes, spaces, a path) never reaches
/// the URLs pages are told.
fn valid_host(host: &str) -> bool {
    let (name, port) = match host.rsplit_once(':') {
        Some((name, port))
            if !name.ends_with(':') && (!name.starts_with('[') || name.ends_with(']')) =>
        {
            (name, Some(port))
        }
        _ => (host, None),
    };
    let name_ok = if let Some(inner) = name.strip_prefix('[').and_then(|n| n.strip_suffix(']')) {
        !inner.is_empty()
            && inner
                .bytes()
                .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
    } else {
        !name.is_empty()
            && name.len() <= 253
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
    };
    let port_ok = port.is_none_or(|p| {
        !p.is_empty()
            && p.len() <= 5
            && p.bytes().all(|b| b.is_ascii_digit())
            && matches!(p.parse::<u32>(), Ok(1..=65535))
    });
    name_ok && port_ok
}

/// The API root as this request saw it: its scheme and host as the visitor
/// sees them (the proxy's `X-Forwarded-Host`, else the host of an
/// absolute-form target (`GET http://host/path`, which RFC 9112 puts before
/// `Host`, as a cache in front keys it), else `Host`, else the address it
/// came to; one that is not a valid host is passed over).
pub fn request_root(request: &Request) -> String {
    let headers = request.headers();
    let valid = |value: &HeaderValue| first(value).filter(|v| valid_host(v)).map(str::to_owned);
    let target = || {
        let authority = request.uri().authority()?.as_str();
        valid_host(authority).then(|| authority.to_owned())
    };
    let host = headers
        .get("x-forwarded-host")
        .and_then(valid)
        .or_else(target)
        .or_else(|| headers.get(header::HOST).and_then(valid))
        // No host named (HTTP/1.0 may name none): the address the request
        // came to.
        .or_else(|| request.local_addr().as_socket_addr().map(|a| a.to_string()))
        .unwrap_or_else(|| "127.0.0.1:8080".to_owned());
    let scheme = if is_https(request) { "https" } else { "http" };
    format!("{scheme}://{host}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_proxy_says_the_scheme_and_host_the_visitor_used() {
        let request = Request::builder()
            .uri_str("http://10.0.0.5:8080/experiments")
            .header("host", "10.0.0.5:8080")
            .header("x-forwarded-proto", "HTTPS, http")
            .header("x-forwarded-host", " ab.example.com , inner")
            .finish();
        assert!(is_https(&request));
        assert_eq!(request_root(&request), "https://ab.example.com");
        assert_eq!(api_root(None, &request), "https://ab.example.com");
        assert_eq!(
            api_root(Some("https://x.example/myna"), &request),
            "https://x.example/myna"
        );
        let direct = Request::builder()
            .uri_str("/experiments")
            .header("host", "myna.local:8080")
            .finish();
        assert!(!is_https(&direct));
        assert_eq!(request_root(&direct), "http://myna.local:8080");
        // An absolute-form target names the host; Host is ignored.
        let absolute = Request::builder()
            .uri_str("http://ab.example.com/v2/deployment/k/myna.json")
            .header("host", "evil.example")
            .finish();
        assert_eq!(request_root(&absolute), "http://ab.example.com");
    }

    #[test]
    fn a_request_naming_no_host_is_told_the_address_it_came_to() {
        let (parts, ()) = poem::http::Request::builder()
            .uri("/v2/deployment")
            .body(())
            .expect("a request")
            .into_parts();
        let local: std::net::SocketAddr = "10.1.2.3:9000".parse().expect("an address");
        let remote: std::net::SocketAddr = "10.9.9.9:5000".parse().expect("an address");
        let parts = poem::RequestParts::from((
            parts,
            poem::web::LocalAddr(local.into()),
            poem::web::RemoteAddr(remote.into()),
            poem::http::uri::Scheme::HTTP,
        ));
        let request = Request::from_parts(parts, poem::Body::empty());
        assert_eq!(request_root(&request), "http://10.1.2.3:9000");
    }

    #[test]
    fn a_host_that_is_not_one_never_reaches_the_urls() {
        let root = |forwarded: Option<&str>, host: &str| {
            let mut request = Request::builder().uri_str("/x").header("host", host);
            if let Some(forwarded) = forwarded {
                request = request.header("x-forwarded-host", forwarded);
            }
            request_root(&request.finish())
        };
        for good in [
            "ab.example.com",
            "127.0.0.1:8080",
            "[::1]:8080",
            "[::1]",
            "localhost:1",
        ] {
            assert_eq!(root(None, good), format!("http://{good}"));
            assert_eq!(root(Some(good), "other.example"), format!("http://{good}"));
        }
        for bad in [
            "a\"b",
            "x y",
            "evil.example:99999",
            "evil.example:0",
            "a/b",
            "a@b",
            "[::1",
            "x:",
            ":80",
            "",
        ] {
            assert_eq!(
                root(Some(bad), "myna.local"),
                "http://myna.local",
                "{bad:?}"
            );
            assert_eq!(root(None, bad), "http://127.0.0.1:8080", "{bad:?}");
        }
    }
}
