//! HTML for the dashboard: the escape helper every user-provided string goes
//! through, the page layout, the one place that makes dashboard responses
//! (with their security headers), and number formatting.

use std::fmt::Write as _;

use myna_core::Problem;
use poem::Response;
use poem::http::{StatusCode, header};

/// Escapes text for HTML element content and quoted attribute values.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Percent-encodes text for a URL query value.
pub fn url_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(byte as char);
            }
            _ => {
                let _ = write!(out, "%{byte:02X}");
            }
        }
    }
    out
}

/// The stylesheet, embedded in the binary.
pub const CSS: &str = include_str!("assets/dashboard.css");

/// Which item of the top navigation is current.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    /// The experiments list and experiment pages.
    Experiments,
    /// The API keys page.
    Keys,
    /// No navigation (signed out).
    None,
}

/// A whole page: `title` (text, escaped here), `body` (HTML), the navigation
/// when signed in (with the CSRF token for the sign-out form).
pub fn page(title: &str, nav: Nav, csrf: Option<&str>, body: &str) -> String {
    let mut out = String::with_capacity(body.len() + 2048);
    let _ = write!(
        out,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{} · Myna</title><link rel=\"stylesheet\" href=\"/assets/dashboard.css\">\
         <link rel=\"icon\" href=\"/assets/icon.svg\" type=\"image/svg+xml\"></head><body>\
         <a class=\"skip\" href=\"#main\">Skip to content</a><header class=\"top\"><div class=\"topbar\">\
         <a class=\"brand\" href=\"/\">{}Myna</a>",
        esc(title),
        ICON_INLINE
    );
    if nav != Nav::None {
        let current = |n: Nav| {
            if n == nav {
                " aria-current=\"page\""
            } else {
                ""
            }
        };
        let _ = write!(
            out,
            "<nav aria-label=\"Main\"><a href=\"/\"{}>Experiments</a><a href=\"/keys\"{}>API keys</a></nav>",
            current(Nav::Experiments),
            current(Nav::Keys)
        );
        if let Some(csrf) = csrf {
            let _ = write!(
                out,
                "<form class=\"signout\" method=\"post\" action=\"/signout\">{}\
                 <button type=\"submit\" class=\"quiet\">Sign out</button></form>",
                csrf_field(csrf)
            );
        }
    }
    let _ = writeln!(
        out,
        "</div></header><main id=\"main\" tabindex=\"-1\">{body}</main></body></html>"
    );
    out
}

/// The logo as an inline SVG (decorative).
const ICON_INLINE: &str = "<svg class=\"logo\" viewBox=\"0 0 32 32\" width=\"24\" height=\"24\" \
    aria-hidden=\"true\" focusable=\"false\"><circle cx=\"16\" cy=\"16\" r=\"15\" fill=\"#1d4ed8\"/>\
    <path d=\"M8 21 L13 11 L16 17 L19 11 L24 21\" fill=\"none\" stroke=\"#fff\" stroke-width=\"2.6\" \
    stroke-linecap=\"round\" stroke-linejoin=\"round\"/></svg>";

/// The favicon.
pub const ICON: &str = "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 32 32\">\
    <circle cx=\"16\" cy=\"16\" r=\"15\" fill=\"#1d4ed8\"/><path d=\"M8 21 L13 11 L16 17 L19 11 L24 21\" \
    fill=\"none\" stroke=\"#fff\" stroke-width=\"2.6\" stroke-linecap=\"round\" stroke-linejoin=\"round\"/></svg>";

/// The hidden CSRF field every signed-in form carries.
pub fn csrf_field(csrf: &str) -> String {
    format!(
        "<input type=\"hidden\" name=\"csrf\" value=\"{}\">",
        esc(csrf)
    )
}

/// A problem's messages as an alert (each with its path where it has one).
pub fn problem_box(problem: &Problem) -> String {
    let mut out = String::from(
        "<div class=\"alert error\" role=\"alert\"><p><strong>That did not work:</strong></p><ul>",
    );
    for message in &problem.messages {
        match &message.path {
            Some(path) => {
                let _ = write!(
                    out,
                    "<li><code>{}</code>: {}</li>",
                    esc(path),
                    esc(&message.message)
                );
            }
            None => {
                let _ = write!(out, "<li>{}</li>", esc(&message.message));
            }
        }
    }
    out.push_str("</ul></div>");
    out
}

/// A confirmation notice (after a redirect), `text` escaped.
pub fn notice(text: &str) -> String {
    format!(
        "<div class=\"alert ok\" role=\"status\"><p>{}</p></div>",
        esc(text)
    )
}

/// The headers every dashboard answer carries: no caching, no framing, no
/// sniffing, and a policy that allows only this server's stylesheet (no
/// script at all, forms posting only here).
fn secure(builder: poem::ResponseBuilder) -> poem::ResponseBuilder {
    builder
        .header(header::CACHE_CONTROL, "no-store")
        .header(header::X_CONTENT_TYPE_OPTIONS, "nosniff")
        .header(header::X_FRAME_OPTIONS, "DENY")
        .header(header::REFERRER_POLICY, "same-origin")
        .header(
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'self'; img-src 'self' data:; \
             form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        )
}

/// An HTML page answer.
pub fn html(status: StatusCode, page: String) -> Response {
    secure(Response::builder())
        .status(status)
        .content_type("text/html; charset=utf-8")
        .body(page)
}

/// A 303 redirect (POST-redirect-GET, or to the sign-in page), with extra
/// headers (cookies).
pub fn redirect(location: &str, cookies: &[String]) -> Response {
    let mut builder = secure(Response::builder())
        .status(StatusCode::SEE_OTHER)
        .header(header::LOCATION, location);
    for cookie in cookies {
        builder = builder.header(header::SET_COOKIE, cookie.as_str());
    }
    builder.finish()
}

/// A count with thousands separators: `1,234,567`.
pub fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A reward total: a count when whole, else three decimals.
pub fn reward(total: f64) -> String {
    if total.fract() == 0.0 && total.abs() < 1e15 {
        let whole = total.abs() as u64;
        let sign = if total < 0.0 { "-" } else { "" };
        format!("{sign}{}", count(whole))
    } else {
        format!("{total:.3}")
    }
}

/// A rate in `[0, 1]` as a percentage with two decimals: `12.50 %`.
pub fn percent(rate: f64) -> String {
    format!("{:.2}\u{a0}%", rate * 100.0)
}

/// A time (epoch milliseconds) as `2026-11-26 15:00 UTC`.
pub fn time(ms: i64) -> String {
    let iso = myna_core::timestamp::format_iso(ms);
    format!(
        "{} {} UTC",
        iso.get(..10).unwrap_or(""),
        iso.get(11..16).unwrap_or("")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_everything_that_could_open_markup() {
        assert_eq!(
            esc(r#"<script>alert("x" & 'y')</script>"#),
            "&lt;script&gt;alert(&quot;x&quot; &amp; &#39;y&#39;)&lt;/script&gt;"
        );
        assert_eq!(esc("plain é"), "plain é");
        assert_eq!(url_encode("a b/é&"), "a%20b%2F%C3%A9%26");
    }

    #[test]
    fn formats_numbers() {
        assert_eq!(count(0), "0");
        assert_eq!(count(1234567), "1,234,567");
        assert_eq!(count(100), "100");
        assert_eq!(reward(12.0), "12");
        assert_eq!(reward(2.5), "2.500");
        assert_eq!(percent(0.125), "12.50\u{a0}%");
        assert_eq!(time(1_795_708_773_232), "2026-11-26 15:59 UTC");
    }
}
