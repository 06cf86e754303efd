// Makes the package's one JavaScript file, pkg/index.js, from what
// wasm-bindgen wrote (scripts/build-sdk runs it before terser):
// - applies binaryen's map of minified import and export names (JSON on
//   stdin, from `wasm-opt --minify-imports-and-exports-and-modules`): the
//   import object becomes one module "a" keyed by the short names, and
//   `wasm.<export>` uses the short export names;
// - inlines js/glue.js (the snippet) and the entry js/index.js, so a page
//   downloads one file; myna_sdk.js and snippets/ are removed (the
//   declarations stay in myna_sdk.d.ts, which index.d.ts re-exports).
// Fails loudly if something is not where wasm-bindgen writes it.
//   usage: node pack.mjs <pkg dir> < map.json
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";

const pkg = process.argv[2];
const input = readFileSync(0, "utf8");
const map = JSON.parse(input.slice(input.indexOf("{")));
let js = readFileSync(join(pkg, "myna_sdk.js"), "utf8");
const fail = (what) => {
  console.error(`pack.mjs: ${what} not found where wasm-bindgen writes it`);
  process.exit(1);
};
const replace = (text, pattern, by, what) => {
  if (!pattern.test(text)) fail(what);
  pattern.lastIndex = 0;
  return text.replace(pattern, by);
};

// ---- The snippet: its imports go, its code comes first (exports dropped).
const named = /^import \{ ([\w, ]+) \} from '(\.\/snippets\/[^']+\/js\/glue\.js)';\n/m.exec(js);
if (!named) fail("the import of js/glue.js");
const snippet = named[2];
const glueNames = new Set(named[1].split(", "));
js = js.replace(named[0], "");
const spaces = new Set();
js = js.replace(/^import \* as (import\d+) from "([^"]+)"\n/gm, (all, local, from) => {
  if (from !== snippet) fail(`a single snippet (found ${from})`);
  spaces.add(local);
  return "";
});
if (/^import /m.test(js)) fail("no other import");
const glue = readFileSync(join(pkg, snippet), "utf8").replace(
  /^export (?=(?:async function|function|class|const|let) )/gm,
  "",
);
for (const name of glueNames) {
  if (!new RegExp(`^(?:async function|function|class|const|let) ${name}\\b`, "m").test(glue)) fail(`glue.js's ${name}`);
}

// ---- Import and export names.
const ret = /return \{\s*__proto__: null,((?:\s*"[^"]+": import\d+,)+)\s*\};/.exec(js);
if (!ret) fail("the imports object");
const modules = new Map();
for (const [, module, local] of ret[1].matchAll(/"([^"]+)": (import\d+)/g)) modules.set(module, local);
const main = [...modules.entries()].find(([m]) => m !== snippet);
if (!main) fail("the main import module");
const extra = [];
for (const [module, name, short] of map.imports) {
  if (module === main[0]) {
    js = replace(js, new RegExp(`^(\\s+)${name}: function`, "m"), `$1${short}: function`, `import ${name}`);
  } else if (module === snippet && spaces.has(modules.get(module))) {
    extra.push(`${short}: ${name}`);
  } else {
    fail(`import module ${module}`);
  }
}
js = js.replace(ret[0], `return { a: Object.assign(${main[1]}, { ${extra.join(", ")} }) };`);
const exports = new Map(map.exports);
js = js.replace(/\bwasm\.(\w+)/g, (all, name) => {
  if (!exports.has(name)) fail(`export ${name}`);
  return `wasm.${exports.get(name)}`;
});

// ---- The package's exports: the page's classes (the entry below starts
// loading the wasm, which Myna.connect waits for, and wraps initSync); the
// rest stays inside.
js = replace(js, /^export class Driver /m, "class Driver ", "class Driver");
js = replace(js, /^export function connect\(/m, "function connect(", "function connect");
js = replace(js, /^export \{ initSync, __wbg_init as default \};$/m, "", "the init exports");
js = replace(js, /^function initSync\(/m, "function initWasm(", "initSync");
js = replace(js, /^\/\* @ts-self-types="[^"]+" \*\/\n/m, "", "the types comment");

let entry = readFileSync(join(pkg, "index.js"), "utf8");
entry = replace(
  entry,
  /^import init, \{ Myna, MynaError, connect, initSync as initWasm \} from "\.\/myna_sdk\.js";\n/m,
  "",
  "the entry's import",
);
entry = replace(entry, /^export \{[^}]*\} from "\.\/myna_sdk\.js";\n/m, "", "the entry's exports");
entry = replace(entry, /\binit\(\)/, "__wbg_init()", "the entry's init");

writeFileSync(
  join(pkg, "index.js"),
  `/* @ts-self-types="./index.d.ts" */\n${glue}\n${js}\n${entry}`,
);
rmSync(join(pkg, "myna_sdk.js"));
rmSync(join(pkg, "snippets"), { recursive: true });
