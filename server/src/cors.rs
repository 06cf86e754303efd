//! CORS for browsers: preflights answered for the allowed origins (default:
//! any origin, no credentials), and requests from other origins refused.

use std::sync::Arc;

use myna_core::{Code, Problem};
use poem::http::{HeaderValue, Method, StatusCode, header};
use poem::{Endpoint, IntoResponse, Middleware, Request, Response, Result};

use crate::answer::{Format, problem_response};
use crate::clock::Clock;
use crate::request::Params;

/// Methods the API answers to browsers.
const METHODS: &str = "GET, POST, PUT, DELETE";
/// Request headers browsers may send (a page's own request id included,
/// which the access log keeps when it is safe to log).
const HEADERS: &str = "Authorization, Content-Type, X-Request-Id";
/// Response headers scripts may read: when to retry a 503 or 429, the
/// server's clock to read a `Retry-After` date against (the page's may be
/// wrong), and the request id to find the request in the log.
const EXPOSED: &str = "Retry-After, Date, X-Request-Id";
/// How long a browser may cache a preflight, in seconds.
const MAX_AGE: &str = "86400";

/// Which origins may call the API from a browser.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Origins {
    /// Any origin (`Access-Control-Allow-Origin: *`).
    #[default]
    Any,
    /// Only these (exact `scheme://host[:port]`).
    List(Vec<String>),
}

impl Origins {
    /// Parses a comma list; empty or `*` means any origin.
    pub fn parse(text: &str) -> Origins {
        let list: Vec<String> = text
            .split(',')
            .map(|o| o.trim().trim_end_matches('/').to_owned())
            .filter(|o| !o.is_empty())
            .collect();
        if list.is_empty() || list.iter().any(|o| o == "*") {
            Origins::Any
        } else {
            Origins::List(list)
        }
    }

    /// The `Access-Control-Allow-Origin` value for `origin`, if allowed.
    fn allow(&self, origin: &HeaderValue) -> Option<HeaderValue> {
        match self {
            Origins::Any => Some(HeaderValue::from_static("*")),
            Origins::List(list) => {
                let origin_text = origin.to_str().ok()?;
                list.iter()
                    .any(|o| o == origin_text)
                    .then(|| origin.clone())
            }
        }
    }
}

/// The CORS middleware.
#[derive(Debug, Clone)]
pub struct Cors {
    origins: Arc<Origins>,
    clock: Clock,
}

impl Cors {
    /// CORS for `origins`; `clock` stamps refusals.
    pub fn new(origins: Origins, clock: Clock) -> Cors {
        Cors {
            origins: Arc::new(origins),
            clock,
        }
    }
}

impl<E: Endpoint> Middleware<E> for Cors {
    type Output = CorsEndpoint<E>;

    fn transform(&self, inner: E) -> CorsEndpoint<E> {
        CorsEndpoint {
            inner,
            cors: self.clone(),
        }
    }
}

/// An endpoint wrapped by [`Cors`].
#[derive(Debug)]
pub struct CorsEndpoint<E> {
    inner: E,
    cors: Cors,
}

impl<E: Endpoint> Endpoint for CorsEndpoint<E> {
    type Output = Response;

    async fn call(&self, request: Request) -> Result<Response> {
        let vary = !matches!(*self.cors.origins, Origins::Any);
        let Some(origin) = request.headers().get(header::ORIGIN).cloned() else {
            let mut response = self.inner.get_response(request).await;
            if vary {
                // Answers differ by origin: a shared cache must not give
                // this one (without CORS headers) to a page of an allowed
                // origin.
                response
                    .headers_mut()
                    .append(header::VARY, HeaderValue::from_static("Origin"));
            }
            return Ok(response);
        };
        let Some(allow) = self.cors.origins.allow(&origin) else {
            // A JSONP call is refused inside its callback, like every other
            // JSONP problem (an invalid callback is never echoed).
            let problem = Problem::new(Code::Authorization, "This origin may not call the API.");
            let callback = Params::of(&request);
            let format = Format::from_callback(callback.get("callback")).unwrap_or(Format::Json);
            return Ok(problem_response(
                &format,
                &problem,
                self.cors.clock.now_ms(),
            ));
        };
        let preflight = request.method() == Method::OPTIONS
            && request
                .headers()
                .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
        let mut response = if preflight {
            StatusCode::NO_CONTENT
                .with_header(header::ACCESS_CONTROL_ALLOW_METHODS, METHODS)
                .with_header(header::ACCESS_CONTROL_ALLOW_HEADERS, HEADERS)
                .with_header(header::ACCESS_CONTROL_MAX_AGE, MAX_AGE)
                .into_response()
        } else {
            self.inner.get_response(request).await
        };
        let headers = response.headers_mut();
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, allow);
        if !preflight {
            headers.insert(
                header::ACCESS_CONTROL_EXPOSE_HEADERS,
                HeaderValue::from_static(EXPOSED),
            );
        }
        if vary {
            headers.append(header::VARY, HeaderValue::from_static("Origin"));
        }
        Ok(response)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_origin_lists() {
        assert_eq!(Origins::parse(""), Origins::Any);
        assert_eq!(Origins::parse("*"), Origins::Any);
        assert_eq!(
            Origins::parse("https://a.example, https://b.example/"),
            Origins::List(vec!["https://a.example".into(), "https://b.example".into()])
        );
        let list = Origins::parse("https://a.example");
        assert!(
            list.allow(&HeaderValue::from_static("https://a.example"))
                .is_some()
        );
        assert!(
            list.allow(&HeaderValue::from_static("https://evil.example"))
                .is_none()
        );
    }
}
