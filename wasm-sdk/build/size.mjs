// Prints what the package weighs: raw and gzipped bytes of the wasm and of
// its JS glue (what a page downloads), then what dominates the wasm: bytes
// of code per crate and the largest functions, read from the name section of
// a copy built with names (the shipped wasm has none).
//   usage: node size.mjs <pkg dir> [<wasm with names>]
import { readFileSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { gzipSync } from "node:zlib";

const [pkg, named] = process.argv.slice(2);
const GOAL = 20 * 1024;

const gz = (bytes) => gzipSync(bytes, { level: 9 }).length;
const files = (dir) =>
  readdirSync(dir).flatMap((f) => (statSync(join(dir, f)).isDirectory() ? files(join(dir, f)) : [join(dir, f)]));

// boot.js is the deployment's myna.js (a page that uses it downloads it too,
// but not the npm package's users): printed on its own, not in the total.
const shipped = files(pkg).filter((f) => /\.(wasm|js)$/.test(f) && !f.endsWith("boot.js"));
let total = 0;
let totalRaw = 0;
console.log("myna-sdk: what a page downloads (gzip -9)");
for (const file of shipped) {
  const bytes = readFileSync(file);
  total += gz(bytes);
  totalRaw += bytes.length;
  console.log(`  ${file.slice(pkg.length + 1).padEnd(58)} ${String(bytes.length).padStart(7)} B  ${String(gz(bytes)).padStart(6)} B gzipped`);
}
const everything = Buffer.concat(shipped.map((f) => readFileSync(f)));
console.log(
  `  total: ${totalRaw} B, ${total} B gzipped file by file ` +
    `(${(total / 1024).toFixed(1)} KB; goal ${GOAL / 1024} KB: ${total <= GOAL ? "met" : "NOT met"})`,
);
console.log(`  (all in one gzip stream: ${gz(everything)} B)`);
const boot = readFileSync(join(pkg, "boot.js"));
console.log(`  and boot.js (the deployment's myna.js, not in the total): ${boot.length} B, ${gz(boot)} B gzipped`);

if (!named) process.exit(0);

// ---- What dominates: a minimal reader of wasm sections and the name section.
const wasm = readFileSync(named);
let pos = 8;
const leb = () => {
  let result = 0;
  let shift = 0;
  for (;;) {
    const b = wasm[pos++];
    result += (b & 0x7f) * 2 ** shift;
    shift += 7;
    if (b < 0x80) return result;
  }
};
const name = () => {
  const n = leb();
  const s = wasm.subarray(pos, pos + n).toString("utf8");
  pos += n;
  return s;
};
let imported = 0;
const bodies = [];
const names = new Map();
const sections = {};
while (pos < wasm.length) {
  const id = wasm[pos++];
  const size = leb();
  const end = pos + size;
  if (id === 0) {
    const custom = name();
    sections[`custom ${custom}`] = size;
    if (custom === "name") {
      while (pos < end) {
        const sub = wasm[pos++];
        const subSize = leb();
        const subEnd = pos + subSize;
        if (sub === 1) {
          for (let n = leb(); n > 0; n--) names.set(leb(), name());
        }
        pos = subEnd;
      }
    }
  } else {
    sections[["custom", "type", "import", "function", "table", "memory", "global", "export", "start", "element", "code", "data", "datacount"][id] ?? id] = size;
    if (id === 2) {
      for (let n = leb(); n > 0; n--) {
        name();
        name();
        const kind = wasm[pos++];
        if (kind === 0) (leb(), imported++);
        else if (kind === 1) (pos++, leb() & 1 ? (leb(), leb()) : leb());
        else if (kind === 2) leb() & 1 ? (leb(), leb()) : leb();
        else if (kind === 3) pos += 2;
        else (pos++, leb());
      }
    }
    if (id === 10) {
      const count = leb();
      for (let i = 0; i < count; i++) {
        const len = leb();
        bodies.push([imported + i, len]);
        pos += len;
      }
    }
  }
  pos = end;
}
const code = bodies.reduce((a, [, l]) => a + l, 0);
// Functions by what they are: the SDK's modules (an export's own code is the
// client code inlined into it), core, the allocator, Rust's alloc/core
// (Vec, String, str, iterators, panics), wasm-bindgen's runtime.
const group = (n = "") => {
  const m = /^<?(?:&?(?:dyn )?)?([A-Za-z_][A-Za-z0-9_]*)(?:\[[0-9a-f]+\])?::([a-z_][a-z0-9_]*)?/.exec(n);
  if (!n.includes("::") && /^(__wbg_)?(myna|experiment|driver)_/.test(n)) return "sdk: exports (and the client code inlined into them)";
  if (!m) return /^__(externref|wbindgen)/.test(n) ? "wasm-bindgen runtime" : "(other)";
  const [, crate, module] = m;
  if (crate === "myna_wasm_sdk") return `sdk: ${module && !/^h[0-9a-f]{16}$/.test(module) ? module : "lib"}`;
  if (crate === "myna_core") return `core: ${module}`;
  if (crate === "rlsf") return "allocator (rlsf)";
  if (crate === "core" || crate === "alloc" || crate === "__rustc") return "Rust core/alloc (Vec, String, str, iterators, panics)";
  if (crate === "wasm_bindgen" || crate === "js_sys") return "wasm-bindgen runtime";
  return crate;
};
const byGroup = new Map();
for (const [i, l] of bodies) byGroup.set(group(names.get(i)), (byGroup.get(group(names.get(i))) ?? 0) + l);
console.log(`\nWhat dominates the wasm (after wasm-opt, names kept): ${code} B of code in ${bodies.length} functions, ${sections.data ?? 0} B of data (strings, tables)`);
console.log("  code by part:");
for (const [c, l] of [...byGroup].sort((a, b) => b[1] - a[1]).slice(0, 14)) {
  console.log(`    ${String(l).padStart(7)} B  ${(100 * l / code).toFixed(0).padStart(3)}%  ${c}`);
}
console.log("  largest functions:");
for (const [i, l] of [...bodies].sort((a, b) => b[1] - a[1]).slice(0, +(process.env.TOP || 12))) {
  console.log(`    ${String(l).padStart(7)} B  ${(names.get(i) ?? "?").slice(0, 110)}`);
}
