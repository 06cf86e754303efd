//! JS values and the page, as the Rust side uses them: fields of objects
//! the browser parsed ([`get`], [`array`], and [`Js`], core's
//! [`Json`] over a JS value), the browser's number text ([`JsNumber`]),
//! and [`Page`], the page as the pure modules' [`Host`] (localStorage and
//! the cookie through `js/glue.js`, `JSON.parse`, beacons, the clock,
//! randomness).

use alloc::string::String;
use alloc::vec::Vec;

use js_sys::Array;
use myna_core::wire::{Json, Number};
use uuid::Uuid;
use wasm_bindgen::JsCast;
use wasm_bindgen::JsValue;

use crate::glue;
use crate::host::{Host, PageShare};
use crate::storage::COOKIE_DAYS;

/// `value[key]`, or `undefined` when `value` is not an object.
pub(crate) fn get(value: &JsValue, key: &str) -> JsValue {
    if value.is_object() {
        glue::reflect_get(value, key)
    } else {
        JsValue::UNDEFINED
    }
}

/// `value` as an array, if it is one (`Array.isArray`: arrays of any realm).
pub(crate) fn array(value: &JsValue) -> Option<&Array> {
    Array::is_array(value).then(|| value.unchecked_ref())
}

/// A value the browser parsed, walked as core's [`Json`].
pub(crate) struct Js(pub(crate) JsValue);

impl Json for Js {
    fn field(&self, key: &str) -> Js {
        Js(get(&self.0, key))
    }

    fn text(&self) -> Option<String> {
        self.0.as_string()
    }

    fn number(&self) -> Option<f64> {
        self.0.as_f64()
    }

    fn boolean(&self) -> Option<bool> {
        self.0.as_bool()
    }

    fn items(&self) -> Option<impl Iterator<Item = Js>> {
        array(&self.0).map(|list| list.iter().map(Js))
    }
}

/// A number as the browser writes it (JSON's form for finite numbers):
/// what the SDK writes amounts with.
pub fn js_number(x: f64) -> String {
    glue::number_text(x)
}

/// [`js_number`] as core's [`Number`].
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct JsNumber;

impl Number for JsNumber {
    fn text(self, x: f64) -> String {
        glue::number_text(x)
    }
}

/// The page the SDK runs in.
#[derive(Clone, Copy)]
pub(crate) struct Page;

/// [`Host::page`]: every client of a page shares its wasm instance.
static PAGE: PageShare = PageShare::new();

impl Host for Page {
    type Json = Js;
    type Number = JsNumber;

    fn now(&self) -> f64 {
        js_sys::Date::now()
    }

    fn random(&self) -> f64 {
        js_sys::Math::random()
    }

    /// From `crypto.getRandomValues` (`Math.random` where it is missing).
    fn uuid(&self) -> Uuid {
        let mut bytes = [0u8; 16];
        if glue::random_values(&mut bytes).is_err() {
            for b in &mut bytes {
                *b = (js_sys::Math::random() * 256.0) as u8;
            }
        }
        // Version 4, RFC 4122 variant (`uuid::Builder::from_random_bytes`).
        bytes[6] = (bytes[6] & 0x0f) | 0x40;
        bytes[8] = (bytes[8] & 0x3f) | 0x80;
        Uuid::from_bytes(bytes)
    }

    fn get(&self, key: &str) -> Option<String> {
        glue::get_item(key)
    }

    fn set(&self, key: &str, value: &str) -> bool {
        glue::set_item(key, value)
    }

    fn remove(&self, key: &str) {
        glue::remove_item(key);
    }

    fn keys(&self, prefix: &str) -> Vec<String> {
        let mut keys = Vec::new();
        for key in glue::stored_keys(prefix).iter() {
            keys.extend(key.as_string());
        }
        keys
    }

    fn cookie(&self, name: &str) -> Option<String> {
        glue::get_cookie(name)
    }

    fn set_cookie(&self, name: &str, value: Option<&str>) {
        let days = if value.is_some() { COOKIE_DAYS } else { 0.0 };
        glue::set_cookie(name, value, days);
    }

    fn page(&self) -> &PageShare {
        &PAGE
    }

    fn parse(&self, text: &str) -> Option<Js> {
        js_sys::JSON::parse(text).ok().map(Js)
    }

    fn beacon(&self, url: &str, body: &str) -> bool {
        glue::send_beacon(url, body).unwrap_or(false)
    }
}
