// The README's front-end quick start, run as written: the code block after
// `<!-- sdk-quick-start -->` in README.md, in headless Chromium, importing
// the built package from a plain <script type="module">, against the real
// server (scripts/with-server). Only the three placeholders (server, API
// key, experiment uuid) are filled in. Run by scripts/test.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { IMPORT_MAP, launch, repo, servePage } from "./browser.mjs";

const ROOT = process.env.MYNA_TEST_API_ROOT;
const AUTH =
  "Basic " +
  Buffer.from(`${process.env.MYNA_TEST_ADMIN_EMAIL}:${process.env.MYNA_TEST_ADMIN_PASSWORD}`).toString(
    "base64",
  );

async function owner(method, path, body) {
  const res = await fetch(ROOT + path, {
    method,
    headers: { authorization: AUTH, "content-type": "application/json" },
    body: body && JSON.stringify(body),
  });
  const json = await res.json();
  assert.ok(res.ok, `${method} ${path}: ${res.status} ${JSON.stringify(json)}`);
  return json;
}

/** The quick start's code block. */
export async function quickStart() {
  const readme = await readFile(join(repo, "README.md"), "utf8");
  const at = readme.indexOf("<!-- sdk-quick-start -->");
  assert.ok(at >= 0, "README.md has the <!-- sdk-quick-start --> marker");
  const block = readme.slice(at).match(/```js\n([\s\S]*?)```/);
  assert.ok(block, "a ```js block follows the marker");
  return block[1];
}

test("the README's front-end quick start runs as written against the real server", async () => {
  assert.ok(ROOT, "MYNA_TEST_API_ROOT is not set: run through scripts/with-server");
  const experiment = await owner("POST", "/v2/experiment", {
    name: "README quick start",
    visibility: "published",
    variants: { a: { settings: { label: "Buy now" } }, b: { settings: { label: "Get it" } } },
  });
  const key = await owner("POST", "/v2/apikey", {});
  let code = await quickStart();
  for (const [placeholder, value] of [
    ["https://ab.example.com", ROOT],
    ["YOUR-API-KEY", key.uuid],
    ["YOUR-EXPERIMENT-UUID", experiment.uuid],
  ]) {
    assert.equal(code.split(placeholder).length, 2, `${placeholder} appears once in the quick start`);
    code = code.replace(placeholder, value);
  }
  const page = `<!doctype html><html><head>${IMPORT_MAP}</head><body>
<button id="buy">…</button>
<script type="module">
${code}
window.quickStartRan = true;
</script></body></html>`;
  const site = await servePage(page);
  const browser = await launch();
  try {
    const tab = await browser.newPage();
    const errors = [];
    tab.on("pageerror", (e) => errors.push(e.message));
    tab.on("console", (m) => m.type() !== "log" && errors.push(`${m.type()}: ${m.text()}`));
    await tab.goto(site.origin);
    await tab.waitForFunction(() => window.quickStartRan === true, null, { timeout: 60_000 });
    const label = await tab.textContent("#buy");
    assert.ok(["Buy now", "Get it"].includes(label), `the button shows a variant: ${label}`);
    await tab.click("#buy");
    await tab.click("#buy"); // a second click rewards nothing more
    // Sent by the timer (default 1 s): poll the owner's read endpoint.
    const shown = label === "Buy now" ? "a" : "b";
    let seen;
    for (let i = 0; i < 300; i++) {
      seen = (await owner("GET", `/v2/experiment/${experiment.uuid}`)).variants;
      if (seen[shown].views === 1 && seen[shown].totalReward === 1) break;
      await new Promise((ok) => setTimeout(ok, 100));
    }
    assert.equal(seen[shown].views, 1, JSON.stringify(seen));
    assert.equal(seen[shown].totalReward, 1, JSON.stringify(seen));
    const other = shown === "a" ? "b" : "a";
    assert.equal(seen[other].views, 0);
    assert.deepEqual(errors, [], "no page errors or warnings");
  } finally {
    await browser.close();
    await site.close();
  }
});
