// Every declaration is generated from the Rust side by wasm-bindgen.
export * from "./myna_sdk.js";
