//! JSONP: which callbacks are safe to echo, and how an answer is wrapped.

use crate::problem::{Code, Problem};

/// Longest callback name, in characters.
pub const MAX_CALLBACK_CHARS: usize = 128;

/// Checks that `callback` is a plain JavaScript identifier path (`a.b_c.$d`):
/// ASCII letters, digits, `_` and `$`, segments joined by single dots, no segment
/// starting with a digit, at most 128 characters, and the first segment no
/// reserved word or literal (`function(…)`, `import(…)`, `new(…)` would not
/// call a callback; after a dot they are property names, as in `a.default`).
/// Anything else is refused and must never be echoed.
pub fn validate_callback(callback: &str) -> Result<(), Problem> {
    let first = callback.split('.').next().unwrap_or_default();
    let ok = !callback.is_empty()
        && callback.len() <= MAX_CALLBACK_CHARS
        && callback.split('.').all(is_identifier)
        && !RESERVED.contains(&first);
    if ok {
        Ok(())
    } else {
        Err(Problem::at(
            Code::InvalidCallback,
            "callback",
            "The callback must be a JavaScript identifier path (letters, digits, `_`, `$` and dots, not starting with a reserved word), at most 128 characters.",
        ))
    }
}

/// The words of JavaScript (strict mode and modules included) that cannot
/// name a variable, and the literals `null`, `true`, `false`.
const RESERVED: [&str; 46] = [
    "await",
    "break",
    "case",
    "catch",
    "class",
    "const",
    "continue",
    "debugger",
    "default",
    "delete",
    "do",
    "else",
    "enum",
    "export",
    "extends",
    "false",
    "finally",
    "for",
    "function",
    "if",
    "implements",
    "import",
    "in",
    "instanceof",
    "interface",
    "let",
    "new",
    "null",
    "package",
    "private",
    "protected",
    "public",
    "return",
    "static",
    "super",
    "switch",
    "this",
    "throw",
    "true",
    "try",
    "typeof",
    "var",
    "void",
    "while",
    "with",
    "yield",
];

fn is_identifier(segment: &str) -> bool {
    let mut chars = segment.chars();
    let Some(first) = chars.next() else {
        return false;
    };
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '$';
    word(first) && !first.is_ascii_digit() && chars.all(word)
}

/// Wraps a JSON text as a JSONP body: `/**/callback(json);`.
///
/// `callback` must have passed [`validate_callback`]. U+2028 and U+2029, legal
/// in JSON strings but line terminators in older JavaScript, are escaped.
pub fn wrap(callback: &str, json: &str) -> String {
    let mut out = String::with_capacity(callback.len() + json.len() + 7);
    out.push_str("/**/");
    out.push_str(callback);
    out.push('(');
    // One pass; none at all where no character starts with byte E2 (all
    // of U+2000 to U+2FFF do), as in an answer whose names are ASCII.
    let mut rest = json;
    if rest.as_bytes().contains(&0xE2) {
        while let Some(at) = rest.find(['\u{2028}', '\u{2029}']) {
            out.push_str(&rest[..at]);
            out.push_str(if rest[at..].starts_with('\u{2028}') {
                "\\u2028"
            } else {
                "\\u2029"
            });
            rest = &rest[at + '\u{2028}'.len_utf8()..];
        }
    }
    out.push_str(rest);
    out.push_str(");");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_identifier_paths() {
        for ok in [
            "cb",
            "myna.callbacks.c12",
            "$",
            "_a$1",
            "jQuery3310_1700",
            "a.default",
            "a.new.function",
            "undefined",
            "functions",
        ] {
            assert!(validate_callback(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn refuses_anything_else() {
        let long = "a".repeat(129);
        for bad in [
            "",
            "a..b",
            ".a",
            "a.",
            "1a",
            "a.1b",
            "alert(1)",
            "a b",
            "a[0]",
            "a-b",
            "é",
            "<script>",
            "function",
            "import",
            "new",
            "null",
            "true",
            "this.cb",
            "await",
            long.as_str(),
        ] {
            let problem = validate_callback(bad).err();
            assert_eq!(
                problem.map(|p| (p.code(), p.status)),
                Some((Code::InvalidCallback, 400)),
                "{bad}"
            );
        }
    }

    #[test]
    fn wraps_with_comment_prefix_and_escapes_separators() {
        assert_eq!(wrap("cb", r#"{"a":1}"#), r#"/**/cb({"a":1});"#);
        assert_eq!(wrap("cb", "\"\u{2028}\""), "/**/cb(\"\\u2028\");");
        // Both separators, their neighbours (same first bytes) and other
        // non-ASCII text left as they are.
        assert_eq!(
            wrap("a.b", "[\"\u{2027}\u{2028}é\u{2029}\u{2029}\u{202A}🐦\"]"),
            "/**/a.b([\"\u{2027}\\u2028é\\u2029\\u2029\u{202A}🐦\"]);"
        );
    }
}
