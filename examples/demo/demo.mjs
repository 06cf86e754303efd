#!/usr/bin/env node
// The Myna demo: sets up an A/B test on a running myna-server, serves a page
// that runs it, and shows in this terminal what the server counts.
//
//   MYNA_ADMIN_EMAIL=… MYNA_ADMIN_PASSWORD=… node examples/demo/demo.mjs
//
// 1. With the owner's credentials it creates (or finds again) the published
//    experiment "Myna demo: landing page headline" with two variants, and an
//    API key named "myna demo": the public key the page uses.
// 2. It serves the page (index.html, app.js) and the built SDK package
//    (wasm-sdk/pkg, from scripts/build-sdk) on http://127.0.0.1:8000, with
//    /config.json telling the page where the server is.
// 3. Every two seconds it reads the experiment with the owner's credentials
//    and prints each variant's views, sign-ups and weight when they change.
//
// Environment: MYNA_URL (default http://127.0.0.1:8080), MYNA_ADMIN_EMAIL,
// MYNA_ADMIN_PASSWORD (the server's first account), DEMO_PORT (default 8000;
// 0 picks a free one). No npm packages needed: Node 20 or later.

import { createServer } from "node:http";
import { readFile } from "node:fs/promises";
import { existsSync } from "node:fs";
import { dirname, extname, join, normalize, sep } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const sdk = join(here, "..", "..", "wasm-sdk", "pkg");
const apiRoot = (process.env.MYNA_URL || "http://127.0.0.1:8080").replace(/\/+$/, "");
const email = process.env.MYNA_ADMIN_EMAIL;
const password = process.env.MYNA_ADMIN_PASSWORD;
const port = Number(process.env.DEMO_PORT ?? 8000);

const NAME = "Myna demo: landing page headline";
const VARIANTS = {
  control: { name: "Control", settings: { headline: "Run A/B tests on your own server" } },
  benefit: { name: "Benefit", settings: { headline: "Let the better page win, automatically" } },
};

function fail(message) {
  console.error(`demo: ${message}`);
  process.exit(1);
}

if (!email || !password) {
  fail("set MYNA_ADMIN_EMAIL and MYNA_ADMIN_PASSWORD to the server's account (see README, \"Try the demo\")");
}
if (!existsSync(join(sdk, "index.js"))) {
  fail(`the SDK package is not built at ${sdk}: run scripts/build-sdk first`);
}

const auth = "Basic " + Buffer.from(`${email}:${password}`).toString("base64");

/** An owner call to the server; the parsed answer, or exits with the problem. */
async function api(method, path, body) {
  let res;
  try {
    res = await fetch(apiRoot + path, {
      method,
      headers: { authorization: auth, ...(body ? { "content-type": "application/json" } : {}) },
      body: body ? JSON.stringify(body) : undefined,
    });
  } catch (e) {
    fail(`cannot reach the Myna server at ${apiRoot} (${e.cause?.code ?? e.message}); is it running?`);
  }
  const answer = await res.json();
  if (!res.ok) {
    const why = answer.messages?.map((m) => `${m.typename}: ${m.message}`).join("; ");
    fail(`${method} ${path} answered ${res.status} (${why})`);
  }
  return answer;
}

// 1. The experiment and the API key, created once and found again afterwards.
const found = await api("GET", `/v2/experiment?q=${encodeURIComponent(NAME)}&visibility=draft,published,archived`);
let experiment = found.results.find((e) => e.name === NAME);
if (!experiment) {
  experiment = await api("POST", "/v2/experiment", { name: NAME, visibility: "published", variants: VARIANTS });
  console.log(`created the experiment "${NAME}" (${experiment.uuid})`);
} else {
  if (experiment.visibility !== "published") {
    experiment = await api("PUT", `/v2/experiment/${experiment.uuid}`, { visibility: "published" });
  }
  console.log(`using the experiment "${NAME}" (${experiment.uuid})`);
}
const keys = await api("GET", "/v2/apikey");
const apiKey = (keys.results.find((k) => k.name === "myna demo") ?? (await api("POST", "/v2/apikey", { name: "myna demo" }))).uuid;
const config = JSON.stringify({ apiRoot, apiKey, experiment: experiment.uuid });

// 2. The site: the page, and the SDK package at /sdk/.
const TYPES = { ".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8", ".wasm": "application/wasm", ".json": "application/json" };
const site = createServer(async (req, res) => {
  const path = decodeURIComponent(new URL(req.url, "http://x").pathname);
  let body;
  let file;
  if (path === "/config.json") body = config;
  else if (path === "/" || path === "/index.html") file = join(here, "index.html");
  else if (path === "/app.js") file = join(here, "app.js");
  else if (path.startsWith("/sdk/")) {
    file = normalize(join(sdk, path.slice(5)));
    if (!file.startsWith(sdk + sep)) file = undefined;
  }
  try {
    body ??= file && (await readFile(file));
  } catch {
    body = undefined;
  }
  if (body === undefined) {
    res.writeHead(404, { "content-type": "text/plain" }).end("not found\n");
    return;
  }
  const type = path === "/config.json" ? TYPES[".json"] : TYPES[extname(file)] ?? "application/octet-stream";
  res.writeHead(200, { "content-type": type, "cache-control": "no-store" }).end(body);
});
site.on("error", (e) => fail(`cannot serve the page on port ${port}: ${e.message} (set DEMO_PORT)`));
site.listen(port, "127.0.0.1", () => {
  const url = `http://127.0.0.1:${site.address().port}/`;
  console.log(`\nopen ${url} in a browser: click "Sign up", or "Simulate 200 visitors"`);
  console.log(`the same counts with curl:\n  curl -s -u '${email}:…' ${apiRoot}/v2/experiment/${experiment.uuid}\n`);
  console.log("what the server counts (owner read, every 2 s, printed when it changes):");
});

// 3. Watch the counts and weights.
let last = "";
async function watch() {
  try {
    const res = await fetch(`${apiRoot}/v2/experiment/${experiment.uuid}`, { headers: { authorization: auth } });
    const form = await res.json();
    const line = Object.entries(form.variants)
      .map(([id, v]) => `${id}: ${v.views} views, ${v.totalReward} sign-ups, weight ${v.weight.toFixed(3)}`)
      .join("  |  ");
    if (line !== last) console.log(`${new Date().toTimeString().slice(0, 8)}  ${line}`);
    last = line;
  } catch (e) {
    const line = `cannot read the experiment: ${e.cause?.code ?? e.message}`;
    if (line !== last) console.log(line);
    last = line;
  }
}
await watch();
setInterval(watch, 2000);
