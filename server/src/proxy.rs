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

/// The API root as this request saw it: its scheme and host as the visitor
/// sees them.
pub fn request_root(request: &Request) -> String {
    let headers = request.headers();
    let host = headers
        .get("x-forwarded-host")
        .or_else(|| headers.get(header::HOST))
        .and_then(first)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
        .or_else(|| request.uri().authority().map(|a| a.to_string()))
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
    }
}
