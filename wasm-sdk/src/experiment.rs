//! A loaded experiment: what the SDK keeps of a read form (from the server or
//! a snapshot the page passed in). The page's `Experiment` class
//! (`js/glue.js`) makes the `Variant` objects from the read form itself.
//!
//! The read form is walked as the JS value the browser parsed (the fields the
//! SDK needs: uuid, name, each variant's id, name and weight) rather than
//! through serde: serde-wasm-bindgen and serde_json's `Value` would more than
//! double the wasm. Settings objects are handed to the page as they came.

use alloc::borrow::ToOwned;
use alloc::string::String;
use alloc::vec::Vec;

use js_sys::Object;
use myna_core::wire::{parse_uuid, uuid_text};
use myna_core::{Code, Problem};
use uuid::Uuid;
use wasm_bindgen::prelude::*;

use crate::js::get;

#[wasm_bindgen(typescript_custom_section)]
const EXPERIMENT_TS: &str = r#"
/**
 * An experiment in the read form the server answers (`GET /v2/experiment/{uuid}`,
 * summary or complete): what `Myna.connect({ experiments })` accepts as a
 * snapshot so a page can render without waiting for the network.
 */
export interface ExperimentSnapshot {
  typename: "experiment";
  subtype: "summary" | "complete";
  uuid: string;
  name: string;
  visibility: "draft" | "published" | "archived";
  settings?: Record<string, unknown>;
  /** Variants by id, in creation order. */
  variants: Record<string, {
    name: string;
    /** The probability with which a client should show it next. */
    weight: number;
    settings?: Record<string, unknown>;
    views?: number;
    totalReward?: number;
  }>;
}

/** A variant as `suggest` and `view` hand it to the page. */
export interface Variant {
  /** Its id (the key in the experiment's `variants`). */
  id: string;
  /** Its human name. */
  name: string;
  /** Its settings: what the page renders differently. */
  settings: Record<string, unknown>;
}
"#;

/// An experiment the SDK can decide with.
pub(crate) struct Loaded {
    /// Lower-case hyphenated uuid.
    pub(crate) uuid: String,
    /// The variant ids, in creation order (what core validates events against).
    pub(crate) variants: Vec<String>,
    /// One weight per variant, in the same order.
    pub(crate) weights: Vec<f64>,
    /// The read form as received: the page's `Experiment` (`js/glue.js`)
    /// reads its name, settings and `Variant` objects from it.
    pub(crate) form: JsValue,
}

impl Loaded {
    /// Reads a read form (summary or complete).
    pub(crate) fn from_js(form: JsValue) -> Result<Loaded, Problem> {
        let bad = |path: &str, message: &str| Problem::at(Code::InvalidType, path, message);
        if get(&form, "typename").as_string().as_deref() != Some("experiment") {
            return Err(bad(
                "typename",
                "An experiment must be in the read form (`typename` \"experiment\").",
            ));
        }
        let Some(uuid) = get(&form, "uuid").as_string().and_then(|t| parse_uuid(&t)) else {
            return Err(bad("uuid", "An experiment's `uuid` must be a UUID."));
        };
        let listed = get(&form, "variants");
        if !listed.is_object() {
            return Err(bad(
                "variants",
                "An experiment's `variants` must be an object.",
            ));
        }
        let mut variants = Vec::new();
        let mut weights = Vec::new();
        let listed_object: &Object = listed.unchecked_ref();
        for id in Object::keys(listed_object).iter() {
            let id = id.as_string().unwrap_or_default();
            let variant = get(&listed, &id);
            let Some(weight) = get(&variant, "weight").as_f64() else {
                return Err(bad(
                    &["variants.", &id, ".weight"].concat(),
                    "A variant's `weight` must be a number.",
                ));
            };
            variants.push(id);
            weights.push(weight);
        }
        Ok(Loaded {
            uuid: canonical(uuid),
            variants,
            weights,
            form,
        })
    }
}

/// The canonical (lower-case hyphenated) form of an experiment uuid, or the
/// text as given when it is not a uuid (it then matches nothing).
pub(crate) fn canonical_uuid(text: &str) -> String {
    parse_uuid(text)
        .map(canonical)
        .unwrap_or_else(|| text.to_owned())
}

/// The lower-case hyphenated text of a uuid.
pub(crate) fn canonical(uuid: Uuid) -> String {
    uuid_text(uuid, true)
}
