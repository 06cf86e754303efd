//! A loaded experiment: what the SDK keeps of a read form (from the server or
//! a snapshot the page passed in) as core's model, and the `Variant` objects
//! handed to the page.
//!
//! The read form is walked as the JS value the browser parsed (the fields the
//! SDK needs: uuid, name, visibility, each variant's id, name and weight)
//! rather than through serde: serde-wasm-bindgen and serde_json's `Value`
//! would more than double the wasm. Settings objects are handed to the page
//! as they came.

use js_sys::{Object, Reflect};
use myna_core::model::{Experiment, Variant, Visibility};
use myna_core::{Code, Problem};
use uuid::Uuid;
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;

use crate::queue::parse_uuid;

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
pub struct Loaded {
    /// Lower-case hyphenated uuid.
    pub uuid: String,
    /// Core's model (variant ids for validation, names).
    pub model: Experiment,
    /// One weight per variant, in the model's order.
    pub weights: Vec<f64>,
    /// The read form as received (its settings objects are handed out as they are).
    pub form: JsValue,
    /// The page's `Variant` objects, in order, made once: every `suggest` or
    /// `view` hands out the same object, and crosses no string.
    variants_js: Vec<JsValue>,
}

impl Loaded {
    /// Reads a read form (summary or complete).
    pub fn from_js(form: JsValue) -> Result<Loaded, Problem> {
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
        let mut variants_js = Vec::new();
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
            let name = get(&variant, "name")
                .as_string()
                .unwrap_or_else(|| id.clone());
            variants_js.push(variant_object(&id, &name, get(&variant, "settings")));
            let mut v = Variant::new(id);
            v.name = name;
            v.settings = serde_json::Value::Null; // the page gets the JS object itself
            variants.push(v);
            weights.push(weight);
        }
        let visibility = get(&form, "visibility")
            .as_string()
            .and_then(|v| Visibility::parse(&v))
            .unwrap_or(Visibility::Published);
        Ok(Loaded {
            uuid: canonical(uuid),
            model: Experiment {
                uuid,
                account_id: Uuid::nil(),
                name: get(&form, "name").as_string().unwrap_or_default(),
                visibility,
                settings: serde_json::Value::Null,
                variants,
            },
            weights,
            form,
            variants_js,
        })
    }

    /// The variant ids, in order.
    pub fn ids(&self) -> Vec<&str> {
        self.model.variants.iter().map(|v| v.id.as_str()).collect()
    }

    /// The page's `Variant` object for the variant with this id.
    pub fn variant_js(&self, id: &str) -> JsValue {
        self.model
            .variants
            .iter()
            .position(|v| v.id == id)
            .and_then(|i| self.variants_js.get(i).cloned())
            .unwrap_or(JsValue::UNDEFINED)
    }

    /// The experiment's own settings object.
    pub fn settings_js(&self) -> JsValue {
        let settings = get(&self.form, "settings");
        if settings.is_object() {
            settings
        } else {
            Object::new().into()
        }
    }
}

/// A `Variant` object: `{ id, name, settings }` (settings `{}` when absent).
fn variant_object(id: &str, name: &str, settings: JsValue) -> JsValue {
    let settings = if settings.is_object() {
        settings
    } else {
        Object::new().into()
    };
    let out = Object::new();
    let _ = Reflect::set(&out, &"id".into(), &id.into());
    let _ = Reflect::set(&out, &"name".into(), &name.into());
    let _ = Reflect::set(&out, &"settings".into(), &settings);
    out.into()
}

/// `value[key]`, or `undefined`.
pub fn get(value: &JsValue, key: &str) -> JsValue {
    if value.is_object() {
        Reflect::get(value, &key.into()).unwrap_or(JsValue::UNDEFINED)
    } else {
        JsValue::UNDEFINED
    }
}

/// The canonical (lower-case hyphenated) form of an experiment uuid, or the
/// text as given when it is not a uuid (it then matches nothing).
pub fn canonical_uuid(text: &str) -> String {
    parse_uuid(text)
        .map(canonical)
        .unwrap_or_else(|| text.to_owned())
}

/// The lower-case hyphenated text of a uuid.
pub fn canonical(uuid: Uuid) -> String {
    uuid.hyphenated()
        .encode_lower(&mut Uuid::encode_buffer())
        .to_owned()
}
