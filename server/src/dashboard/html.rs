//! The dashboard's answers: the one place that makes its responses (with
//! their security headers) from the pages `views` renders, the embedded
//! assets, and the formatting of numbers and times on the pages.

use maud::Markup;
use poem::Response;
use poem::http::{StatusCode, header};

/// The stylesheet, embedded in the binary.
pub const CSS: &str = include_str!("assets/dashboard.css");

/// The favicon.
pub const ICON: &str = "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 32 32\">\
    <circle cx=\"16\" cy=\"16\" r=\"15\" fill=\"#1d4ed8\"/><path d=\"M8 21 L13 11 L16 17 L19 11 L24 21\" \
    fill=\"none\" stroke=\"#fff\" stroke-width=\"2.6\" stroke-linecap=\"round\" stroke-linejoin=\"round\"/></svg>";

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
pub fn html(status: StatusCode, page: Markup) -> Response {
    secure(Response::builder())
        .status(status)
        .content_type("text/html; charset=utf-8")
        .body(finish(page))
}

/// A page's text. maud escapes `&`, `<`, `>` and `"` in every value a page
/// splices in (its attributes are always double-quoted); every `'` becomes
/// `&#39;` here as well, so that no text can close a single-quoted value
/// should the markup ever be quoted so. The pages have no `script` or
/// `style` element (whose text takes no references), so this changes no
/// character a browser reads.
fn finish(page: Markup) -> String {
    page.into_string().replace('\'', "&#39;")
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

/// A count with thousands separators: `1,234,567` (core's, as the decision's summary writes them).
pub fn count(n: u64) -> String {
    myna_core::decision::grouped(n)
}

/// A reward total: a count when whole, else at most three decimals, the
/// whole part grouped like a count either way (`10,693`, `10,057.25`).
pub fn reward(total: f64) -> String {
    if !total.is_finite() || total.abs() >= 1e15 {
        return format!("{total}");
    }
    let sign = if total < 0.0 { "-" } else { "" };
    let text = format!("{:.3}", total.abs());
    let (whole, decimals) = text.split_once('.').unwrap_or((&text, ""));
    let whole = count(whole.parse().unwrap_or(0));
    let decimals = decimals.trim_end_matches('0');
    if decimals.is_empty() {
        format!("{sign}{whole}")
    } else {
        format!("{sign}{whole}.{decimals}")
    }
}

/// A rate in `[0, 1]` as a percentage with two decimals, `12.50 %`, or three
/// significant digits when under 0.1 % (`0.0199 %`, `0.000120 %`), so small
/// rates and their intervals still tell variants apart.
pub fn percent(rate: f64) -> String {
    let p = rate * 100.0;
    // 2 - floor(log10 p): three significant digits; 8 at most.
    let significant = |p: f64| (2 - p.log10().floor() as i32).clamp(2, 8) as usize;
    let decimals = if p > 0.0 && p < 0.1 {
        // Counted on the value as rounded, which may reach the next power
        // of ten: 0.099951 % is `0.10 %`, 0.0099995 % is `0.0100 %`.
        let first = significant(p);
        let rounded: f64 = format!("{p:.first$}").parse().unwrap_or(p);
        match rounded {
            r if r >= 0.1 => 2,
            r if r > 0.0 => significant(r),
            _ => first,
        }
    } else {
        2
    };
    format!("{p:.decimals$}\u{a0}%")
}

/// A probability of being best, as every dashboard page shows it: core's
/// rule for the decision's sentences (rounded down, never `100 %`):
/// `97 %`, `99.7 %`, `more than 99.9 %`.
pub fn probability(p: f64) -> String {
    format!("{}\u{a0}%", myna_core::decision::probability_percent(p))
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
        let text = r#"<script>alert("x" & 'y')</script>"#;
        let body = finish(maud::html! { p title=(text) { (text) "plain é" } });
        let escaped = "&lt;script&gt;alert(&quot;x&quot; &amp; &#39;y&#39;)&lt;/script&gt;";
        assert_eq!(body, format!("<p title=\"{escaped}\">{escaped}plain é</p>"));
    }

    #[test]
    fn formats_numbers() {
        assert_eq!(count(0), "0");
        assert_eq!(count(1234567), "1,234,567");
        assert_eq!(count(100), "100");
        assert_eq!(reward(12.0), "12");
        assert_eq!(reward(2.5), "2.5");
        assert_eq!(reward(0.125), "0.125");
        assert_eq!(reward(1.0004), "1");
        assert_eq!(reward(100.0002), "100");
        assert_eq!(reward(10_693.0), "10,693");
        assert_eq!(reward(10_057.25), "10,057.25");
        assert_eq!(reward(1_234_567.999_6), "1,234,568");
        assert_eq!(reward(-2.5), "-2.5");
        assert_eq!(percent(0.125), "12.50\u{a0}%");
        assert_eq!(percent(0.0), "0.00\u{a0}%");
        assert_eq!(percent(0.00099), "0.0990\u{a0}%");
        // Rounded up to the next power of ten: still three digits at most.
        assert_eq!(percent(0.00099951), "0.10\u{a0}%");
        assert_eq!(percent(0.000099996), "0.0100\u{a0}%");
        assert_eq!(percent(3.0 / 151_000.0), "0.00199\u{a0}%");
        assert_eq!(percent(1.0 / 150_000.0), "0.000667\u{a0}%");
        assert_eq!(percent(1e-12), "0.00000000\u{a0}%");
        // Probabilities: rounded down, never to 100 % nor up to 99.7 %.
        assert_eq!(probability(0.99999), "more than 99.9\u{a0}%");
        assert_eq!(probability(0.996_999), "99.6\u{a0}%");
        assert_eq!(probability(0.997_06), "99.7\u{a0}%");
        assert_eq!(probability(0.4995), "49\u{a0}%");
        assert_eq!(time(1_795_708_773_232), "2026-11-26 15:59 UTC");
    }
}
