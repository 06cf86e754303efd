// The package entry: the wasm-bindgen output (its public classes, which
// src/lib.rs re-exports from js/glue.js), except that the wasm's fetch and
// (streaming) compilation start as this module is evaluated, and
// `Myna.connect` waits for them, so a page never calls an init function
// itself. A failed load rejects the `connect` calls waiting for it with a
// `MynaError` (code `network`, or `unsupported` where the browser cannot
// run WebAssembly here: none, or a CSP forbidding it; never an unhandled
// rejection when none is); the next call loads again.
// scripts/build-sdk inlines this file, the snippets of js/ and
// wasm-bindgen's JS into the package's one index.js (build/pack.mjs).
// Declarations: index.d.ts re-exports the generated ones.
import init, { Myna, MynaError, connect, initSync as initWasm } from "./myna_sdk.js";

export { Experiment, Myna, MynaError } from "./myna_sdk.js";

// Where the wasm's URL cannot be fetched (Node, a bundle without it): its
// bytes or module given instead; `connect` then waits for nothing.
export function initSync(module) {
  ready = Promise.resolve(initWasm(module));
}

const loadWasm = () => {
  const p = init();
  p.catch(() => ready === p && (ready = undefined));
  return p;
};
let ready = loadWasm();
Myna.connect = async function (options) {
  try {
    await (ready ??= loadWasm());
  } catch (e) {
    // A MynaError like any other failure (the wasm's URL answered 404 or
    // HTML, or the network failed).
    // The likely fix, by what failed.
    const m = `${e?.message ?? e}`;
    const none = typeof WebAssembly != "object";
    const csp = !none && /Content.Security/i.test(m);
    const hint = none
      ? "no WebAssembly here"
      : csp
        ? "the page's CSP must allow 'wasm-unsafe-eval' (not 'unsafe-eval') in script-src"
        : /Failed to fetch|NetworkError|Load failed/.test(m)
          ? "the network failed, or the page's CSP connect-src does not allow the SDK's origin"
          : `it is fetched beside the SDK's module: a bundler that moves the module must not, as Vite's dev server does without optimizeDeps.exclude ["myna-sdk"]; where its URL cannot be fetched, as in Node, give its bytes to initSync first`;
    const message = `The SDK's wasm could not be loaded: ${m} (${hint})`;
    const code = none || csp ? "unsupported" : "network";
    throw new MynaError(message, code, undefined, undefined, [code, message, undefined]);
  }
  return connect(options);
};
