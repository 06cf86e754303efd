//! The HTTP layer's limits on a request head, and the problems that answer
//! them: checked before a request reaches the routes, so a request over a
//! limit is answered as every other refusal is (a Myna problem, JSON), and
//! hyper's own limits, which it answers with a bare status, are only reached
//! by heads far over ours (and are then answered with the same problems).

use myna_core::{Code, Message, Problem};
use poem::http::header::{self, HeaderName};
use poem::http::uri::Authority;
use poem::http::{HeaderMap, HeaderValue, Uri, Version};
use serde_json::json;

/// The longest request URI (path and query), in bytes. A real request is a
/// few hundred (the longest, a JSONP record call, stays under 2 KiB);
/// 8 KiB is also what common proxies pass on by default.
pub const MAX_URI_BYTES: usize = 8 * 1024;

/// The most header fields in a request: hyper's own limit (raising it moves
/// its parser's array of fields from the stack to the heap, about 5 %
/// slower), which it answers itself (a problem, see [`hyper_problem`]).
pub const MAX_HEADER_FIELDS: usize = 100;

/// The most bytes of header fields (names and values) in a request. Browsers
/// send under 2 KiB to Myna; a site whose cookies reach Myna's host may send
/// far more, so the limit is as generous as common proxies' (4 × 8 KiB to
/// 64 KiB).
pub const MAX_HEADER_BYTES: usize = 64 * 1024;

/// The most bytes of a request head (request line and header fields) hyper
/// buffers before it gives up: room for a head at our limits and for a URI
/// just over the `http` crate's cap of 65,534 bytes (so hyper parses such a
/// head to its end and says "URI too long" rather than "too large"), and
/// what a hostile client can make a connection hold while it sends a head.
pub const HEAD_BUFFER_BYTES: usize = 80 * 1024;

/// The request headers Myna reads: their values must be visible ASCII (a
/// NUL, any other control character or a non-ASCII byte in them is refused,
/// rather than the header being taken as absent).
const HEADERS_READ: [HeaderName; 9] = [
    header::AUTHORIZATION,
    header::COOKIE,
    header::CONTENT_TYPE,
    header::CONTENT_LENGTH,
    header::HOST,
    header::ORIGIN,
    header::ACCESS_CONTROL_REQUEST_METHOD,
    HeaderName::from_static("x-forwarded-host"),
    HeaderName::from_static("x-forwarded-proto"),
];

/// Checks a request head against the limits above.
pub fn check_head(version: Version, uri: &Uri, headers: &HeaderMap) -> Result<(), Problem> {
    let uri_bytes = uri.path_and_query().map_or(0, |p| p.as_str().len())
        + uri.authority().map_or(0, |a| a.as_str().len());
    if uri_bytes > MAX_URI_BYTES {
        return Err(uri_too_long());
    }
    let header_bytes: usize = headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len())
        .sum();
    if headers.len() > MAX_HEADER_FIELDS || header_bytes > MAX_HEADER_BYTES {
        return Err(headers_too_large());
    }
    let unreadable: Vec<Message> = HEADERS_READ
        .iter()
        .filter(|name| headers.get_all(*name).iter().any(|v| v.to_str().is_err()))
        .map(|name| {
            let name = spelled(name.as_str());
            Message::at(
                Code::InvalidValue,
                name.clone(),
                format!(
                    "The {name} header must be visible ASCII text (no control \
                     characters such as NUL, no other bytes)."
                ),
            )
        })
        .collect();
    if !unreadable.is_empty() {
        return Err(Problem::many(unreadable));
    }
    // RFC 9112 3.2: an HTTP/1.1 request without `Host`, or with more than
    // one, or with one that names no host, is a 400 (two readers could
    // take two hosts; the URLs pages are told are made from it).
    let hosts: Vec<&HeaderValue> = headers.get_all(header::HOST).iter().collect();
    let host_ok = match hosts.as_slice() {
        [] => version < Version::HTTP_11,
        [host] => host.to_str().is_ok_and(host_value_ok),
        _ => false,
    } && uri
        // An absolute-form target names the host instead (RFC 9112 3.2.2):
        // it must name one as well.
        .authority()
        .is_none_or(|authority| {
            !authority.as_str().is_empty() && host_value_ok(authority.as_str())
        });
    if host_ok {
        Ok(())
    } else {
        Err(Problem::one(Message::at(
            Code::InvalidValue,
            "host",
            "Send one Host header naming the server's host (and port, 1 to 65535), as HTTP/1.1 requires.",
        )))
    }
}

/// Whether a `Host` value names a host: empty (a request whose target has
/// no authority), or `host[:port]` as a URI's authority, with no user
/// information and a port, if any, from 1 to 65535. Laxer than
/// `proxy::valid_host` (which a host must also pass to reach the URLs
/// pages are told): `my_service:8080` behind a proxy is served.
fn host_value_ok(host: &str) -> bool {
    if host.is_empty() {
        return true;
    }
    let Ok(authority) = host.parse::<Authority>() else {
        return false;
    };
    // The port as written (`Authority::port` is `None` for one that is no u16).
    let port = host
        .rsplit_once(':')
        .filter(|(name, _)| !name.starts_with('[') || name.ends_with(']'))
        .map(|(_, port)| port);
    let port_ok = port.is_none_or(|port| port.parse::<u16>().is_ok_and(|p| p > 0));
    !host.contains('@') && !authority.host().is_empty() && port_ok
}

/// 414: the URI is over [`MAX_URI_BYTES`].
pub fn uri_too_long() -> Problem {
    with_status(
        414,
        Message::new(
            Code::InvalidValue,
            format!("The request URI is longer than {MAX_URI_BYTES} bytes."),
        )
        .with_data(json!({ "limit": MAX_URI_BYTES })),
    )
}

/// 431: too many header fields, or too many bytes of them.
pub fn headers_too_large() -> Problem {
    with_status(
        431,
        Message::new(
            Code::InvalidValue,
            format!(
                "The request's header fields are too large: at most \
                 {MAX_HEADER_FIELDS} fields and {MAX_HEADER_BYTES} bytes in all."
            ),
        )
        .with_data(json!({ "fields": MAX_HEADER_FIELDS, "bytes": MAX_HEADER_BYTES })),
    )
}

/// 400: not HTTP/1.1 that can be read.
pub fn malformed() -> Problem {
    with_status(
        400,
        Message::new(
            Code::InvalidValue,
            "The request is not valid HTTP/1.1: a malformed request line, header \
             field or framing (e.g. a control character such as NUL in a header).",
        ),
    )
}

/// The problem that replaces an answer hyper wrote by itself (a bare status
/// for a head it could not parse). `request_line_unfinished`: the head was
/// too large before its first line even ended, so it is the URI. `error`:
/// hyper's error, which names the part of the head it could not read.
pub fn hyper_problem(status: u16, request_line_unfinished: bool, error: Option<&str>) -> Problem {
    match status {
        414 => uri_too_long(),
        431 if request_line_unfinished => uri_too_long(),
        431 => headers_too_large(),
        _ => error
            .and_then(unreadable_part)
            .map_or_else(malformed, |(path, message)| {
                with_status(400, Message::at(Code::InvalidValue, path, message))
            }),
    }
}

/// The part of a request head that hyper's parse error (its description,
/// which names no header) says it could not read, as a problem's path and
/// message; `None` for an error that names no part.
fn unreadable_part(error: &str) -> Option<(&'static str, &'static str)> {
    const CHUNKED_ONLY: &str = "Transfer-Encoding must end with chunked, the only framing of \
        a request body served (identity is not one), and not be sent with HTTP/1.0.";
    let parts: [(&str, &str, &str); 7] = [
        (
            "invalid HTTP method parsed",
            "method",
            "The request line's method is not an HTTP method (a token such as GET or POST).",
        ),
        (
            "invalid HTTP version parsed",
            "version",
            "The request line must end with HTTP/1.1 (or HTTP/1.0).",
        ),
        (
            "invalid URI",
            "target",
            "The request target (the path and query) is not a valid URI: \
             percent-encode spaces, quotes and bytes that are not ASCII.",
        ),
        (
            "invalid content-length parsed",
            "Content-Length",
            "Content-Length must be one decimal number (sent twice, the same number).",
        ),
        (
            "invalid transfer-encoding parsed",
            "Transfer-Encoding",
            CHUNKED_ONLY,
        ),
        (
            "unexpected transfer-encoding parsed",
            "Transfer-Encoding",
            CHUNKED_ONLY,
        ),
        (
            "invalid HTTP header parsed",
            "headers",
            "A header field cannot be read: its name is not a token (no spaces, \
             colons or control characters) or its value holds a control character \
             such as NUL.",
        ),
    ];
    parts
        .iter()
        .find(|(description, _, _)| error.starts_with(description))
        .map(|&(_, path, message)| (path, message))
}

/// 400: a plain HTTP request on the port that serves HTTPS.
pub fn plain_http_on_https() -> Problem {
    with_status(
        400,
        Message::at(
            Code::InvalidValue,
            "scheme",
            "This port serves HTTPS: send the request to https:// rather than http://.",
        ),
    )
}

/// 503: every connection the server may hold is busy with a request.
pub fn too_many_connections() -> Problem {
    Problem::new(
        Code::Unavailable,
        "The server is answering as many requests as it can hold; retry later.",
    )
}

fn with_status(status: u16, message: Message) -> Problem {
    Problem {
        status,
        messages: vec![message],
    }
}

/// A header's name as problem paths spell it elsewhere (`Content-Type`):
/// each word capitalized.
fn spelled(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut start = true;
    for c in name.chars() {
        out.push(if start { c.to_ascii_uppercase() } else { c });
        start = c == '-';
    }
    out
}

#[cfg(test)]
mod tests {
    use poem::http::HeaderValue;

    use super::*;

    fn check(uri: &str, headers: &[(&str, &[u8])]) -> Result<(), Problem> {
        let uri: Uri = uri.parse().expect("a URI");
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            let name = HeaderName::from_bytes(name.as_bytes()).expect("a name");
            map.append(name, HeaderValue::from_bytes(value).expect("a value"));
        }
        if !map.contains_key(header::HOST) {
            map.append(header::HOST, HeaderValue::from_static("myna"));
        }
        check_head(Version::HTTP_11, &uri, &map)
    }

    #[test]
    fn an_http_1_1_request_names_one_valid_host() {
        let head = |version: Version, hosts: &[&str]| {
            let mut map = HeaderMap::new();
            for host in hosts {
                map.append(header::HOST, HeaderValue::from_str(host).expect("a value"));
            }
            check_head(version, &"/".parse().expect("a URI"), &map).map_err(|p| {
                assert_eq!(p.messages[0].path.as_deref(), Some("host"));
                p.status
            })
        };
        for good in [
            "myna",
            "ab.example.com:8443",
            "[::1]:8080",
            "10.0.0.5",
            "my_service:80",
            "",
        ] {
            assert_eq!(head(Version::HTTP_11, &[good]), Ok(()), "{good}");
        }
        for bad in [
            "a b",
            "evil.com:99999",
            "x:y:z",
            "x:0",
            "user@host",
            "host:",
            "a/b",
        ] {
            assert_eq!(head(Version::HTTP_11, &[bad]), Err(400), "{bad}");
        }
        assert_eq!(head(Version::HTTP_11, &[]), Err(400), "none");
        assert_eq!(head(Version::HTTP_11, &["a", "b"]), Err(400), "two");
        assert_eq!(head(Version::HTTP_10, &[]), Ok(()), "HTTP/1.0 needs none");
        // An absolute-form target's host must be one too (Host is not
        // taken instead).
        let target = |uri: &str| {
            let mut map = HeaderMap::new();
            map.append(header::HOST, HeaderValue::from_static("myna"));
            check_head(Version::HTTP_11, &uri.parse().expect("a URI"), &map).map_err(|p| p.status)
        };
        assert_eq!(target("http://ab.example.com:8443/v2"), Ok(()));
        for bad in ["http://u@h/v2", "http://x:99999/v2", "http://1.2.3.4:0/v2"] {
            assert_eq!(target(bad), Err(400), "{bad}");
        }
    }

    #[test]
    fn heads_within_the_limits_pass() {
        let long = format!("/v2/experiment?q={}", "a".repeat(MAX_URI_BYTES - 20));
        assert_eq!(check(&long, &[("authorization", b"ApiKey x")]), Ok(()));
        // Non-ASCII is refused only in a header Myna reads.
        assert_eq!(check("/", &[("user-agent", "é".as_bytes())]), Ok(()));
    }

    #[test]
    fn heads_over_the_limits_are_problems_with_their_status() {
        let long = format!("/?q={}", "a".repeat(MAX_URI_BYTES));
        assert_eq!(check(&long, &[]).map_err(|p| p.status), Err(414));
        let big = vec![b'a'; MAX_HEADER_BYTES];
        assert_eq!(
            check("/", &[("x-big", &big)]).map_err(|p| p.status),
            Err(431)
        );
        let problem = check(
            "/",
            &[("cookie", b"a=\xff"), ("authorization", b"Basic \xc3\xa9")],
        );
        let paths: Vec<_> = problem
            .clone()
            .err()
            .iter()
            .flat_map(|p| p.messages.iter().filter_map(|m| m.path.clone()))
            .collect();
        assert_eq!(problem.map_err(|p| p.status), Err(400));
        assert_eq!(paths, ["Authorization", "Cookie"]);
    }

    #[test]
    fn hyper_answers_become_the_same_problems() {
        assert_eq!(hyper_problem(414, false, None), uri_too_long());
        assert_eq!(hyper_problem(431, true, None), uri_too_long());
        assert_eq!(hyper_problem(431, false, None), headers_too_large());
        assert_eq!(hyper_problem(400, false, None), malformed());
    }
}
