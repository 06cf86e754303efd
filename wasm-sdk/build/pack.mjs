// Makes the package's one JavaScript file, pkg/index.js, from what
// wasm-bindgen wrote (scripts/build-sdk runs it before terser):
// - applies binaryen's map of minified import and export names (JSON on
//   stdin, from `wasm-opt --minify-imports-and-exports-and-modules`): the
//   import object becomes one module "a" keyed by the short names, and
//   `wasm.<export>` uses the short export names;
// - inlines the snippets (js/glue.js and the files beside it that the
//   wasm imports from) and the entry js/index.js, so a page downloads one
//   file; myna_sdk.js and snippets/ are removed (the declarations stay in
//   myna_sdk.d.ts, which index.d.ts re-exports).
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

// ---- The snippets (js/glue.js, js/transport.js, js/storage.js): their
// imports go, their code comes first (exports dropped), each after the
// snippets it imports from; one scope, so no two may declare one name.
const snippets = new Map(); // path -> the names wasm-bindgen's JS imports
js = js.replace(/^import \{ ([\w, ]+) \} from '(\.\/snippets\/[^']+\/js\/\w+\.js)';\n/gm, (all, names, from) => {
  snippets.set(from, new Set(names.split(", ")));
  return "";
});
const spaces = new Set();
js = js.replace(/^import \* as (import\d+) from "([^"]+)"\n/gm, (all, local, from) => {
  if (!/^\.\/snippets\/[^/]+\/js\/\w+\.js$/.test(from)) fail(`a snippet of js/ (found ${from})`);
  if (!snippets.has(from)) snippets.set(from, new Set());
  spaces.add(local);
  return "";
});
if (![...snippets.keys()].some((path) => path.endsWith("/js/glue.js"))) fail("the import of js/glue.js");
if (/^import /m.test(js)) fail("no other import");
const declared = /^(?:async function|function|class|const|let) (\w+)/gm;
const code = new Map(); // path -> [code, paths it imports]
const owner = new Map(); // a top-level name -> its snippet
for (const [path, names] of snippets) {
  const dir = path.slice(0, path.lastIndexOf("/") + 1);
  const needs = [];
  const text = readFileSync(join(pkg, path), "utf8")
    .replace(/^import \{ [\w, ]+ \} from "\.\/(\w+\.js)";\n/gm, (all, file) => {
      if (!snippets.has(dir + file)) fail(`js/${file}, which ${path} imports, among the snippets`);
      needs.push(dir + file);
      return "";
    })
    .replace(/^export (?=(?:async function|function|class|const|let) )/gm, "");
  if (/^(?:import|export) /m.test(text)) fail(`no other import or export in ${path}`);
  for (const [, name] of text.matchAll(declared)) {
    if (owner.has(name)) fail(`one declaration of ${name} (${owner.get(name)} and ${path})`);
    owner.set(name, path);
  }
  for (const name of names) {
    if (owner.get(name) !== path) fail(`${path}'s ${name}`);
  }
  code.set(path, [text, needs]);
}
const ordered = [];
const visit = (path, seen = []) => {
  if (ordered.includes(path)) return;
  if (seen.includes(path)) fail(`snippets without an import cycle (${[...seen, path].join(" -> ")})`);
  for (const need of code.get(path)[1]) visit(need, [...seen, path]);
  ordered.push(path);
};
[...code.keys()].sort().forEach((path) => visit(path));
const glue = ordered.map((path) => code.get(path)[0]).join("\n");

// ---- Import and export names.
const ret = /return \{\s*__proto__: null,((?:\s*"[^"]+": import\d+,)+)\s*\};/.exec(js);
if (!ret) fail("the imports object");
const modules = new Map();
for (const [, module, local] of ret[1].matchAll(/"([^"]+)": (import\d+)/g)) modules.set(module, local);
const main = [...modules.entries()].find(([m]) => !snippets.has(m));
if (!main) fail("the main import module");
const extra = [];
for (const [module, name, short] of map.imports) {
  if (module === main[0]) {
    js = replace(js, new RegExp(`^(\\s+)${name}: function`, "m"), `$1${short}: function`, `import ${name}`);
  } else if (snippets.has(module) && spaces.has(modules.get(module)) && owner.get(name) === module) {
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
