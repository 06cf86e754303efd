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
use myna_core::wire::{parse_uuid, push_decimal, uuid_text};
use myna_core::{Code, Problem};
use uuid::Uuid;
use wasm_bindgen::prelude::*;

use crate::js::{array, get};

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
  /** Its short name (`myna-{id}` in markup), where the server gives one. */
  id?: string | null;
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

/**
 * The deployment form (`GET /v2/deployment/{key}/myna.json`): every
 * published experiment of an account, as a page runs them.
 */
export interface Deployment {
  typename: "deployment";
  uuid: string;
  apiKey: string;
  apiRoot: string;
  latest: string;
  experiments: DeploymentExperiment[];
}

/** An experiment of a deployment: variants as an array, in creation order. */
export interface DeploymentExperiment {
  typename: "experiment";
  uuid: string;
  /** Its short name: pages mark its elements with the class `myna-{id}`. */
  id: string;
  name: string;
  settings?: Record<string, unknown>;
  variants: {
    typename?: "variant";
    id: string;
    name: string;
    /** The probability with which a client should show it next. */
    weight: number;
    settings?: Record<string, unknown>;
  }[];
}

/** A variant as `suggest` and `view` hand it to the page. */
export interface Variant {
  /** Its id (its key in a read form's `variants`, its `id` in a deployment's). */
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
    /// The short name pages use (`myna-{id}`), when the form has one.
    pub(crate) id: Option<String>,
    /// The variant ids, in creation order (what core validates events against).
    pub(crate) variants: Vec<String>,
    /// One weight per variant, in the same order.
    pub(crate) weights: Vec<f64>,
    /// The form as received: the page's `Experiment` (`js/glue.js`)
    /// reads its name, settings and `Variant` objects from it.
    pub(crate) form: JsValue,
}

impl Loaded {
    /// Reads a read form (summary or complete; variants an object keyed by
    /// id) or an experiment of a deployment form (variants an array of
    /// objects with an `id`). Problems have paths relative to the form.
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
        let id = get(&form, "id");
        let id = match id.as_string() {
            Some(text) if !text.is_empty() => Some(text),
            _ if id.is_undefined() || id.is_null() => None,
            _ => {
                return Err(bad(
                    "id",
                    "An experiment's `id` must be a non-empty string.",
                ));
            }
        };
        let listed = get(&form, "variants");
        let mut variants: Vec<String> = Vec::new();
        let mut weights = Vec::new();
        // A deployment's variants: an array of objects with an `id`; a read
        // form's: an object keyed by id (walked by its keys).
        let list = array(&listed);
        let keys = (list.is_none() && listed.is_object())
            .then(|| Object::keys(listed.unchecked_ref::<Object>()));
        let Some(items) = list.or(keys.as_ref()) else {
            return Err(bad(
                "variants",
                "An experiment's `variants` must be an object (or an array).",
            ));
        };
        for (i, item) in items.iter().enumerate() {
            let (id, variant) = match list {
                Some(_) => (get(&item, "id").as_string(), item),
                None => {
                    let id = item.as_string().unwrap_or_default();
                    let variant = get(&listed, &id);
                    (Some(id), variant)
                }
            };
            let in_array = list.is_some();
            let Some(id) = id.filter(|id| !id.is_empty() && !variants.contains(id)) else {
                return Err(bad(
                    &variant_path(in_array, i, None, "id"),
                    "A variant's `id` must be a string, unique in its experiment.",
                ));
            };
            let Some(weight) = get(&variant, "weight").as_f64() else {
                return Err(bad(
                    &variant_path(in_array, i, Some(&id), "weight"),
                    "A variant's `weight` must be a number.",
                ));
            };
            variants.push(id);
            weights.push(weight);
        }
        Ok(Loaded {
            uuid: canonical(uuid),
            id,
            variants,
            weights,
            form,
        })
    }
}

/// The path of a variant's `field`: `variants[2].weight` in an array,
/// `variants.b.weight` in an object keyed by id.
#[inline(never)]
fn variant_path(in_array: bool, i: usize, id: Option<&str>, field: &str) -> String {
    let mut path = String::from("variants");
    match id {
        Some(id) if !in_array => {
            path.push('.');
            path.push_str(id);
        }
        _ => {
            path.push('[');
            push_decimal(&mut path, i as u64);
            path.push(']');
        }
    }
    path.push('.');
    path.push_str(field);
    path
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
