// The package in Node (server-side rendering, scripts): importing it is
// safe; where the wasm's URL cannot be fetched, `connect` says to give its
// bytes to `initSync`, and with them a client decides from a snapshot, runs
// without page events (no crash a tick later), does not keep the process
// alive, and closes. Run by scripts/test-sdk.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";

const pkg = new URL("../pkg/", import.meta.url);

// A script run in its own Node process; its exit code and output.
const run = (code) =>
  spawnSync(process.execPath, ["--input-type=module", "-e", code], {
    cwd: fileURLToPath(pkg),
    encoding: "utf8",
    timeout: 60_000,
  });

const snapshot = {
  typename: "experiment",
  subtype: "summary",
  uuid: "6f1c1a52-3b0e-4d8e-9f39-0c6f5c1d2a11",
  name: "node",
  visibility: "published",
  variants: { a: { name: "a", weight: 1, settings: { label: "A" } } },
};
const options = JSON.stringify({ apiRoot: "http://127.0.0.1:9", apiKey: "k", experiments: [snapshot] });

test("without the wasm's bytes, connect rejects saying to give them to initSync", () => {
  const out = run(`
    import { Myna } from "./index.js";
    try { await Myna.connect(${options}); console.log("connected"); }
    catch (e) { console.log(e.name, e.code, e.message); }
  `);
  assert.equal(out.status, 0, out.stderr);
  assert.match(out.stdout, /^MynaError network .*initSync/m);
});

test("with initSync, a client decides, outlives a tick with no page events, and lets the process end", () => {
  const out = run(`
    import { readFileSync } from "node:fs";
    import { Myna, initSync } from "./index.js";
    initSync({ module: readFileSync("myna_sdk_bg.wasm") });
    const myna = await Myna.connect(${options});
    const variant = myna.experiment("${snapshot.uuid}").suggest();
    await new Promise((ok) => setTimeout(ok, 50));
    console.log(variant.id, variant.settings.label, myna.queued);
  `);
  // Exits by itself (its timer does not hold the process), without an
  // uncaught error.
  assert.equal(out.status, 0, out.stderr);
  assert.equal(out.stdout.trim(), "a A 1");
  const closed = run(`
    import { readFileSync } from "node:fs";
    import { Myna, initSync } from "./index.js";
    initSync(readFileSync("myna_sdk_bg.wasm"));
    const myna = await Myna.connect(${options});
    await new Promise((ok) => setTimeout(ok, 50));
    myna.close();
    console.log("closed");
  `);
  assert.equal(closed.status, 0, closed.stderr);
  assert.equal(closed.stdout.trim(), "closed");
});

test("the package exports its wasm by name, for initSync (as bundlers and Node resolve it)", () => {
  const out = run(`
    import { readFileSync } from "node:fs";
    const { Myna, initSync } = await import("myna-sdk");
    initSync({ module: readFileSync(new URL(import.meta.resolve("myna-sdk/myna_sdk_bg.wasm"))) });
    const myna = await Myna.connect(${options});
    console.log(myna.experiment("${snapshot.uuid}").suggest().id);
    myna.close();
  `);
  assert.equal(out.status, 0, out.stderr);
  assert.equal(out.stdout.trim(), "a");
});

test("a fetch another script wrapped so that it never settles still ends at timeoutMs", () => {
  // An ad blocker's or analytics script's wrapper that ignores the abort
  // signal: the flush must still fail with `timeout` and keep the events,
  // and the next flush must end too (it waited for ever behind the first).
  const out = run(`
    import { readFileSync } from "node:fs";
    import { Myna, initSync } from "./index.js";
    initSync(readFileSync("myna_sdk_bg.wasm"));
    globalThis.fetch = () => new Promise(() => {});
    const myna = await Myna.connect({ ...${options}, timeoutMs: 200 });
    myna.experiment("${snapshot.uuid}").suggest();
    const first = await myna.flush().then(() => "sent", (e) => e.code);
    const second = await myna.flush().then(() => "sent", (e) => e.code);
    console.log(first, second, myna.queued);
    myna.close();
  `);
  assert.equal(out.status, 0, out.stderr);
  assert.equal(out.stdout.trim(), "timeout timeout 1");
});

test("without queueMicrotask (old browsers), suggest still answers and the view is queued", () => {
  const out = run(`
    import { readFileSync } from "node:fs";
    delete globalThis.queueMicrotask;
    const { Myna, initSync } = await import("./index.js");
    initSync(readFileSync("myna_sdk_bg.wasm"));
    const myna = await Myna.connect(${options});
    const variant = myna.experiment("${snapshot.uuid}").suggest();
    await new Promise((ok) => setTimeout(ok, 50));
    console.log(variant.id, myna.queued);
    myna.close();
  `);
  assert.equal(out.status, 0, out.stderr);
  assert.equal(out.stdout.trim(), "a 1");
});
