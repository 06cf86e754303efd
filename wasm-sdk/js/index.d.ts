// Every declaration is generated from the Rust side by wasm-bindgen.
export * from "./myna_sdk.js";
import type { SyncInitInput } from "./myna_sdk.js";
/**
 * Where the wasm's URL cannot be fetched (Node, a bundle that does not ship
 * `myna_sdk_bg.wasm` beside it): gives the SDK the wasm's bytes or compiled
 * module, once, before `Myna.connect` (which then loads nothing).
 */
export declare function initSync(module: { module: SyncInitInput } | SyncInitInput): void;
