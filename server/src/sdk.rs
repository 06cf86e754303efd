//! The SDK this server hosts for pages that include its one-tag script
//! (`GET /v2/deployment/{key}/myna.js`): the npm package's files as
//! `scripts/build-sdk` makes them, committed under `server/sdk/` and
//! compiled into the binary, so `cargo run -p myna-server` serves them with
//! no build step of its own (`scripts/test-sdk` fails when they are not the
//! build of the current `wasm-sdk/` source). The files are served under a
//! version made of their own hash (`/v2/sdk/{version}/index.js`), so they
//! can be cached for a year; the deployment's script, which names that
//! version, is cached for seconds.

use std::sync::OnceLock;

use sha2::{Digest, Sha256};

use crate::auth::secret::hex;

/// One file of the package.
#[derive(Debug)]
pub struct SdkFile {
    /// Its name in the package (and the last segment of its URL).
    pub name: &'static str,
    /// Its `Content-Type`.
    pub content_type: &'static str,
    /// Its bytes.
    pub bytes: &'static [u8],
    /// The same, gzipped (`gzip -9 -n`, by `scripts/build-sdk --server`),
    /// for browsers that accept it: about half the bytes.
    pub gzip: &'static [u8],
}

/// The package's files a page loads: the ES module (which fetches the wasm
/// beside it, by `import.meta.url`) and the wasm.
pub const FILES: [SdkFile; 2] = [
    SdkFile {
        name: "index.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../sdk/index.js"),
        gzip: include_bytes!("../sdk/index.js.gz"),
    },
    SdkFile {
        name: "myna_sdk_bg.wasm",
        content_type: "application/wasm",
        bytes: include_bytes!("../sdk/myna_sdk_bg.wasm"),
        gzip: include_bytes!("../sdk/myna_sdk_bg.wasm.gz"),
    },
];

/// The deployment's classic script (`wasm-sdk/js/boot.js`, minified), with
/// its two placeholders.
const BOOT: &str = include_str!("../sdk/boot.js");
/// Replaced by the deployment form (JSON).
const DEPLOYMENT_PLACEHOLDER: &str = "\"__MYNA_DEPLOYMENT__\"";
/// Replaced by the URL of the package's `index.js` (a JSON string).
const SDK_PLACEHOLDER: &str = "\"__MYNA_SDK__\"";

/// The version the files are served under: the first 16 hex digits of the
/// SHA-256 of their bytes, so a new build gets new URLs.
pub fn version() -> &'static str {
    static VERSION: OnceLock<String> = OnceLock::new();
    VERSION.get_or_init(|| {
        let mut hash = Sha256::new();
        for file in &FILES {
            hash.update(file.name.as_bytes());
            hash.update((file.bytes.len() as u64).to_le_bytes());
            hash.update(file.bytes);
        }
        hex(&hash.finalize()[..8])
    })
}

/// The file `name` of version `version`, if that is this server's.
pub fn file(version: &str, name: &str) -> Option<&'static SdkFile> {
    if version != self::version() {
        return None;
    }
    FILES.iter().find(|f| f.name == name)
}

/// Whether an `Accept-Encoding` value accepts gzip: `gzip` (or `*`)
/// listed without `q=0`.
pub fn accepts_gzip(accept_encoding: &str) -> bool {
    accept_encoding.split(',').any(|item| {
        let mut parts = item.split(';').map(str::trim);
        let coding = parts.next().unwrap_or_default();
        let refused = parts.any(|p| {
            p.strip_prefix("q=")
                .and_then(|q| q.parse::<f32>().ok())
                .is_some_and(|q| q <= 0.0)
        });
        (coding.eq_ignore_ascii_case("gzip") || coding == "*") && !refused
    })
}

/// The path of the package's entry module under the API root.
pub fn entry_path() -> String {
    format!("/v2/sdk/{}/index.js", version())
}

/// The deployment's script: the boot script with `deployment` (the
/// deployment form's JSON) and the entry's absolute URL (`entry_url`)
/// inlined.
pub fn boot_script(deployment: &str, entry_url: &str) -> String {
    let url = serde_json::Value::String(entry_url.to_owned()).to_string();
    // Both placeholders are found in the template, never in what fills
    // them: an experiment named "__MYNA_SDK__" is data, not a slot.
    let mut slots = [
        (
            BOOT.find(DEPLOYMENT_PLACEHOLDER),
            DEPLOYMENT_PLACEHOLDER,
            deployment,
        ),
        (BOOT.find(SDK_PLACEHOLDER), SDK_PLACEHOLDER, url.as_str()),
    ];
    slots.sort_by_key(|(at, _, _)| *at);
    let mut out = String::with_capacity(BOOT.len() + deployment.len() + url.len());
    let mut from = 0;
    for (at, placeholder, value) in slots {
        let Some(at) = at else { continue };
        out.push_str(&BOOT[from..at]);
        out.push_str(value);
        from = at + placeholder.len();
    }
    out.push_str(&BOOT[from..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_boot_script_holds_each_placeholder_once() {
        assert_eq!(BOOT.matches(DEPLOYMENT_PLACEHOLDER).count(), 1);
        assert_eq!(BOOT.matches(SDK_PLACEHOLDER).count(), 1);
        let script = boot_script(
            r#"{"experiments":[]}"#,
            "https://ab.example.com/v2/sdk/x/index.js",
        );
        assert!(script.contains(r#"{"experiments":[]}"#));
        assert!(script.contains(r#""https://ab.example.com/v2/sdk/x/index.js""#));
        assert!(!script.contains("__MYNA_"));
    }

    #[test]
    fn placeholder_text_in_the_data_is_data() {
        for deployment in [
            r#"{"experiments":[{"name":"\"__MYNA_SDK__\""}]}"#,
            r#"{"experiments":[{"id":"__MYNA_SDK__","name":"__MYNA_DEPLOYMENT__"}]}"#,
        ] {
            let url = "https://ab.example.com/v2/sdk/x/index.js";
            let script = boot_script(deployment, url);
            // The template's slots are filled, the data kept as it was.
            let expected = BOOT
                .replacen(DEPLOYMENT_PLACEHOLDER, "\u{0}", 1)
                .replacen(SDK_PLACEHOLDER, &format!("\"{url}\""), 1)
                .replacen('\u{0}', deployment, 1);
            assert_eq!(script, expected);
            assert!(script.contains(deployment));
        }
    }

    #[test]
    fn gzip_is_sent_only_where_accepted() {
        assert!(accepts_gzip("gzip, deflate, br, zstd"));
        assert!(accepts_gzip("br;q=1.0, GZIP;q=0.5"));
        assert!(accepts_gzip("*"));
        assert!(!accepts_gzip("identity"));
        assert!(!accepts_gzip("gzip;q=0, br"));
        assert!(!accepts_gzip(""));
        for file in &FILES {
            assert_eq!(&file.gzip[..2], &[0x1f, 0x8b], "{} is gzipped", file.name);
            assert!(file.gzip.len() < file.bytes.len(), "{}", file.name);
        }
    }

    #[test]
    fn files_are_found_only_under_this_version() {
        assert_eq!(version().len(), 16);
        assert!(file(version(), "index.js").is_some());
        assert!(file(version(), "myna_sdk_bg.wasm").is_some());
        assert!(file(version(), "boot.js").is_none());
        assert!(file("0000000000000000", "index.js").is_none());
    }
}
