// The package entry: the wasm-bindgen output (its public classes, which
// src/lib.rs re-exports from js/glue.js), except that `Myna.connect` loads
// the wasm first (once), so a page never calls an init function itself.
// scripts/build-sdk inlines this file, js/glue.js and wasm-bindgen's JS into
// the package's one index.js (build/pack.mjs). Declarations: index.d.ts
// re-exports the generated ones.
import init, { Myna, connect } from "./myna_sdk.js";

export { Experiment, Myna, MynaError, initSync } from "./myna_sdk.js";

let ready;
Myna.connect = async function (options) {
  ready ??= init().catch((e) => {
    ready = undefined;
    throw e;
  });
  await ready;
  return connect(options);
};
