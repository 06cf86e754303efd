// The package entry: the wasm-bindgen output as it is (its public classes;
// the internal `Driver` stays inside), except that `Myna.connect` loads the
// wasm first (once), so a page never calls an init function itself.
// Declarations: index.d.ts re-exports the generated ones.
import init, { Myna } from "./myna_sdk.js";

export { Experiment, Myna, MynaError, initSync } from "./myna_sdk.js";

let ready;
const connect = Myna.connect;
Myna.connect = async function (options) {
  ready ??= init().catch((e) => {
    ready = undefined;
    throw e;
  });
  await ready;
  return connect.call(this, options);
};
