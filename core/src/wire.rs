//! The wire codec both sides share, in the `no_std` build: decimals, uuid
//! text, JSON strings, percent-encoding (and its decoding, which the
//! server's query strings need), and a walk over a JSON value some
//! parser already made ([`Json`]: serde_json's on the server, the
//! browser's in the SDK). The event writer and the record query built on
//! them are [`crate::event`]'s; reading a problem is
//! [`crate::Problem::read`].
//!
//! Nothing here uses `core::fmt`, serde or float formatting: the SDK's wasm
//! compiles all of it, and each would weigh more there than the whole
//! codec. Tests in `core/tests/wire.rs` hold every writer equal to what
//! serde, `to_string` and the uuid crate write.

use alloc::string::String;

use uuid::Uuid;

/// Writes a finite `f64` as JSON text. The SDK passes the browser's own
/// number formatting (which keeps Rust's, some 15 KB, out of its wasm);
/// any function `Fn(f64) -> String` is one. A type rather than a function
/// pointer: a call through a pointer keeps a function table, and all it
/// references, in the wasm.
pub trait Number: Copy {
    /// The JSON text of `x`: any text that parses back to the same `f64`.
    fn text(self, x: f64) -> String;
}

impl<F: Fn(f64) -> String + Copy> Number for F {
    fn text(self, x: f64) -> String {
        self(x)
    }
}

/// Lower-case hexadecimal digits.
const HEX: &[u8; 16] = b"0123456789abcdef";

/// Appends `n` in decimal (what `to_string` writes).
pub fn push_decimal(out: &mut String, n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    let mut rest = n;
    loop {
        at -= 1;
        digits[at] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    for &d in &digits[at..] {
        out.push(char::from(d));
    }
}

/// Appends `n` in lower-case hexadecimal, at least `digits` digits (what
/// `format!("{n:0digits$x}")` writes).
pub fn push_hex(out: &mut String, n: u64, digits: u32) {
    let width = (u64::BITS - n.leading_zeros())
        .div_ceil(4)
        .max(digits)
        .max(1);
    for shift in (0..width).rev() {
        // Digits past the sixteenth are zeros (a shift of 64 or more is none).
        let nibble = n.checked_shr(4 * shift).unwrap_or(0) & 15;
        out.push(char::from(HEX[nibble as usize]));
    }
}

/// Appends a signed `n` in decimal (what `to_string` writes).
pub fn push_integer(out: &mut String, n: i64) {
    if n < 0 {
        out.push('-');
    }
    push_decimal(out, n.unsigned_abs());
}

/// Reads a decimal integer: ASCII digits only (no sign, no spaces), `None`
/// when empty or over `u64` (what `str::parse::<u64>` accepts, smaller).
pub fn parse_decimal(text: &str) -> Option<u64> {
    if text.is_empty() {
        return None;
    }
    let mut n: u64 = 0;
    for b in text.bytes() {
        if !b.is_ascii_digit() {
            return None;
        }
        n = n.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
    }
    Some(n)
}

/// Appends the lower-case text of a uuid: hyphenated, or the 32 digits
/// alone (what the uuid crate's `hyphenated()` and `simple()` write).
pub fn push_uuid(out: &mut String, id: Uuid, hyphens: bool) {
    for (i, b) in id.as_bytes().iter().enumerate() {
        if hyphens && matches!(i, 4 | 6 | 8 | 10) {
            out.push('-');
        }
        out.push(HEX[usize::from(b >> 4)] as char);
        out.push(HEX[usize::from(b & 15)] as char);
    }
}

/// The lower-case text of a uuid ([`push_uuid`]).
pub fn uuid_text(id: Uuid, hyphens: bool) -> String {
    let mut out = String::with_capacity(36);
    push_uuid(&mut out, id, hyphens);
    out
}

/// Reads a uuid in its hyphenated or simple text form, in either case.
pub fn parse_uuid(text: &str) -> Option<Uuid> {
    let mut bytes = [0u8; 16];
    let mut digits = 0;
    for b in text.bytes() {
        let d = match b {
            b'0'..=b'9' => b - b'0',
            b'a'..=b'f' => b - b'a' + 10,
            b'A'..=b'F' => b - b'A' + 10,
            b'-' => continue,
            _ => return None,
        };
        let byte = bytes.get_mut(digits / 2)?;
        *byte = (*byte << 4) | d;
        digits += 1;
    }
    (digits == 32).then(|| Uuid::from_bytes(bytes))
}

/// Appends `text` as a JSON string (what serde_json writes).
pub fn push_json_string(out: &mut String, text: &str) {
    // Byte by byte, copying the runs between escapes (every escaped byte is
    // ASCII, so the runs are whole characters): no UTF-8 decoding.
    out.push('"');
    let mut start = 0;
    for (i, b) in text.bytes().enumerate() {
        let escape = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            8 => "\\b",
            12 => "\\f",
            0..0x20 => "\\u00",
            _ => continue,
        };
        out.push_str(text.get(start..i).unwrap_or_default());
        out.push_str(escape);
        if escape.len() > 2 {
            // `\u00` and two hexadecimal digits
            out.push(HEX[usize::from(b >> 4)] as char);
            out.push(HEX[usize::from(b & 15)] as char);
        }
        start = i + 1;
    }
    out.push_str(text.get(start..).unwrap_or_default());
    out.push('"');
}

/// Percent-encodes everything but `A-Z a-z 0-9 - _ . ~` (UTF-8 bytes), as
/// `encodeURIComponent` does for ids and text.
pub fn url_encode(text: &str) -> String {
    const UPPER: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push('%');
            out.push(UPPER[usize::from(b >> 4)] as char);
            out.push(UPPER[usize::from(b & 15)] as char);
        }
    }
    out
}

/// Decodes `application/x-www-form-urlencoded` text (a query string's or a
/// form's names and values), the reverse of [`url_encode`]: `+` is a space,
/// `%XX` a byte; a `%` not followed by two hex digits stays as it is, and
/// bytes that are not UTF-8 become U+FFFD.
pub fn url_decode(text: &str) -> String {
    if !text.bytes().any(|b| b == b'+' || b == b'%') {
        return String::from(text);
    }
    String::from_utf8(url_decode_bytes(text))
        .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// [`url_decode`], or `None` when the bytes it decodes to are not UTF-8
/// (a form whose text must be stored as sent: nothing replaced).
pub fn url_decode_exact(text: &str) -> Option<String> {
    String::from_utf8(url_decode_bytes(text)).ok()
}

/// The bytes `application/x-www-form-urlencoded` text stands for.
fn url_decode_bytes(text: &str) -> alloc::vec::Vec<u8> {
    fn hex(byte: &u8) -> Option<u8> {
        (*byte as char)
            .to_digit(16)
            .and_then(|d| u8::try_from(d).ok())
    }
    let bytes = text.as_bytes();
    let mut out = alloc::vec::Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => match (
                bytes.get(i + 1).and_then(hex),
                bytes.get(i + 2).and_then(hex),
            ) {
                (Some(high), Some(low)) => {
                    out.push(high * 16 + low);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            byte => out.push(byte),
        }
        i += 1;
    }
    out
}

/// A JSON value a parser already made, walked field by field: serde_json's
/// `Value` (through `&Value`) on the server and in tests, the browser's
/// parsed value in the SDK (whose wasm holds no JSON parser). Readers of
/// wire forms written once against it ([`crate::Problem::read`], the SDK's
/// stored queue) read both alike.
pub trait Json: Sized {
    /// `self[key]`: a value that reads as nothing when `self` is not an
    /// object or has no such field.
    fn field(&self, key: &str) -> Self;
    /// The string, if it is one.
    fn text(&self) -> Option<String>;
    /// The number, if it is one.
    fn number(&self) -> Option<f64>;
    /// The boolean, if it is one.
    fn boolean(&self) -> Option<bool>;
    /// The elements, if it is an array.
    fn items(&self) -> Option<impl Iterator<Item = Self>>;
}

#[cfg(feature = "std")]
impl Json for &serde_json::Value {
    fn field(&self, key: &str) -> Self {
        static NOTHING: serde_json::Value = serde_json::Value::Null;
        (*self).get(key).unwrap_or(&NOTHING)
    }

    fn text(&self) -> Option<String> {
        self.as_str().map(String::from)
    }

    fn number(&self) -> Option<f64> {
        self.as_f64()
    }

    fn boolean(&self) -> Option<bool> {
        self.as_bool()
    }

    fn items(&self) -> Option<impl Iterator<Item = Self>> {
        (*self).as_array().map(|list| list.iter())
    }
}
