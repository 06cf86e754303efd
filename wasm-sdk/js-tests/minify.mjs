// Applies binaryen's map of minified import and export names (JSON on
// stdin, from `wasm-opt --minify-imports-and-exports-and-modules`) to the
// wasm-bindgen JS of the package: the import object becomes one module "a"
// keyed by the short names, and `wasm.<export>` uses the short export names.
// Fails loudly if a name is not where wasm-bindgen writes it.
//   usage: node minify.mjs <pkg>/myna_sdk.js < map.json   (scripts/build-sdk)
import { readFileSync, writeFileSync } from "node:fs";

const file = process.argv[2];
const input = readFileSync(0, "utf8");
const map = JSON.parse(input.slice(input.indexOf("{")));
let js = readFileSync(file, "utf8");
const fail = (what) => {
  console.error(`minify.mjs: ${what} not found in ${file}`);
  process.exit(1);
};

// The object of imports: `"<module>": importN` entries at its end.
const modules = new Map();
const ret = /return \{\s*__proto__: null,((?:\s*"[^"]+": import\d+,)+)\s*\};/.exec(js);
if (!ret) fail("the imports object");
for (const [, module, local] of ret[1].matchAll(/"([^"]+)": (import\d+)/g)) modules.set(module, local);
const main = [...modules.entries()].find(([m]) => !m.startsWith("./snippets/"));
if (!main) fail("the main import module");
const extra = [];
for (const [module, name, short] of map.imports) {
  if (module === main[0]) {
    const key = new RegExp(`^(\\s+)${name}: function`, "m");
    if (!key.test(js)) fail(`import ${name}`);
    js = js.replace(key, `$1${short}: function`);
  } else {
    if (!modules.has(module)) fail(`import module ${module}`);
    extra.push(`${short}: ${modules.get(module)}.${name}`);
  }
}
js = js.replace(ret[0], `return { a: Object.assign(${main[1]}, { ${extra.join(", ")} }) };`);

const exports = new Map(map.exports);
js = js.replace(/\bwasm\.(\w+)/g, (all, name) => {
  if (!exports.has(name)) fail(`export ${name}`);
  return `wasm.${exports.get(name)}`;
});
writeFileSync(file, js);
