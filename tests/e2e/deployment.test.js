// Deployments: a page whose only script is the server's one tag
// (`<script src="{server}/v2/deployment/{key}/myna.js">`) and myna-html
// markup (pages/deploy/*.html, templates filled in here). Against the real
// server: each visitor sees exactly its variant with the bindings applied,
// is counted once however often it reloads, rewards once per view (click and
// load goals), and the server's counts equal what the visitors did; nothing
// leaves the page's two origins; the bound content never flickers, and the
// page shows as written when the server is down or the SDK does not come;
// the JSON form as the original clients read it (JSONP); and, printed only,
// how long the snippet takes and how many bytes it loads.

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync, constants as zlib } from "node:zlib";
import { staticSite, until, world, zeroCounts } from "./harness.js";

const here = dirname(fileURLToPath(import.meta.url));

/** The experiment the pages are marked up for (class `myna-hero`). */
const HERO = {
  calm: { name: "Calm", settings: { headline: "Quietly better A/B tests", tone: "soft", next: "thanks.html?from=calm" } },
  bold: {
    name: "Bold",
    settings: { headline: "SHIP THE WINNER", tone: "loud", next: "thanks.html?from=bold", fancy: true },
  },
};
const DEFAULT_HEADLINE = "Default headline";
/** The `data-show` paragraphs each variant shows (`fancy`: a truthy setting of bold's). */
const SHOWS = { calm: ["show-calm"], bold: ["show-bold", "show-fancy"] };
const ALL_SHOWS = ["show-calm", "show-bold", "show-fancy"];
/** A generous binding timeout for pages that must bind (CI machines are slow; no view otherwise). */
const PATIENT_TIMEOUT_MS = 60_000;

let w;
let key;
let hero;
let tmp;
/** The site: `/up/` pages point to the server, `/quick/` too with the default timeout, `/down/` to a closed port. */
let site;

/** A port nothing listens on. */
async function closedPort() {
  const s = createServer();
  await new Promise((r) => s.listen(0, "127.0.0.1", r));
  const { port } = s.address();
  await new Promise((r) => s.close(r));
  return port;
}

/** pages/deploy/*.html with the server root, key and timeout filled in, in a new directory. */
function fill(name, root, timeout) {
  const dir = join(tmp, name);
  mkdirSync(dir);
  const templates = join(here, "pages", "deploy");
  for (const file of readdirSync(templates)) {
    const text = readFileSync(join(templates, file), "utf8")
      .replaceAll("MYNA_ROOT", root)
      .replaceAll("MYNA_KEY", key)
      .replaceAll("MYNA_TIMEOUT", timeout);
    writeFileSync(join(dir, file), text);
  }
  return dir;
}

before(async () => {
  w = await world();
  hero = await w.api.ok("POST", "/v2/experiment", {
    body: {
      name: "Hero banner",
      id: "hero",
      visibility: "published",
      settings: { "myna.web.sticky": true },
      variants: HERO,
    },
  });
  // A draft: never in a deployment.
  await w.api.ok("POST", "/v2/experiment", { body: { name: "Draft idea", variants: { x: {} } } });
  key = await w.api.createApiKey("deployment");
  tmp = mkdtempSync(join(tmpdir(), "myna-e2e-deploy-"));
  site = await staticSite({
    "/up/": fill("up", w.server.url, String(PATIENT_TIMEOUT_MS)),
    "/quick/": fill("quick", w.server.url, ""),
    "/down/": fill("down", `http://127.0.0.1:${await closedPort()}`, ""),
    "/": join(here, "pages"),
  });
});
after(async () => {
  await site?.close();
  await w?.close();
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

// ---- The page as a visitor sees it ------------------------------------------------

/** Waits until the snippet has bound the page (or failed); "bound" or the failure. */
function bound(page) {
  return page.evaluate(() =>
    window.myna ? window.myna.then(() => "bound", (e) => `failed: ${e}`) : "no window.myna",
  );
}

/** What the page shows of the experiment's elements (visible: painted, not hidden). */
function shown(page) {
  return page.evaluate((ids) => {
    const visible = (e) => {
      if (!e || !e.isConnected || e.closest("[hidden]")) return false;
      const s = getComputedStyle(e);
      return s.visibility === "visible" && s.display !== "none";
    };
    const h = document.getElementById("headline");
    return {
      headline: visible(h) ? h.textContent : null,
      tone: h.getAttribute("data-tone"),
      next: document.getElementById("next").getAttribute("href"),
      nextVisible: visible(document.getElementById("next")),
      buyVisible: visible(document.getElementById("buy")),
      shows: ids.filter((id) => visible(document.getElementById(id))),
    };
  }, ALL_SHOWS);
}

/** Which variant the page shows, after checking it shows exactly that one, bindings applied. */
async function variantShown(page) {
  const s = await shown(page);
  const id = Object.keys(HERO).find((v) => HERO[v].settings.headline === s.headline);
  assert.ok(id, `the headline is a variant's: ${JSON.stringify(s)}`);
  const { settings } = HERO[id];
  assert.deepEqual(s.shows, SHOWS[id], `only ${id}'s data-show elements are shown`);
  assert.equal(s.tone, settings.tone, "@data-tone is bound");
  assert.equal(s.next, settings.next, "@href is bound");
  assert.ok(s.nextVisible && s.buyVisible, "the link and the goal button are shown");
  return id;
}

/** Loads a hero page, waits for the binding; the variant it shows. */
async function heroLoad(page, url) {
  await page.goto(url);
  assert.equal(await bound(page), "bound");
  return variantShown(page);
}

/** Sends what the page queued, until the server confirmed all of it. */
function drain(page) {
  return until("the page's events to be sent", () =>
    page.evaluate(async () => {
      const m = await window.myna;
      await m.flush();
      return m.queued === 0;
    }),
  );
}

/** How many events the page has queued and not sent. */
function queued(page) {
  return page.evaluate(async () => (await window.myna).queued);
}

/** A new visitor (its own storage) whose every request URL is kept in `urls`. */
async function visitorContext(urls = []) {
  const context = await w.browser.newContext();
  context.on("request", (r) => urls.push(r.url()));
  return context;
}

/** Fails if a request left the page's origins (the site and the server). */
function onlyOrigins(urls) {
  const allowed = new Set([new URL(site.url).origin, new URL(w.server.url).origin]);
  // data: URLs (the pages' empty icon) leave nothing.
  const away = urls.filter((u) => !u.startsWith("data:") && !allowed.has(new URL(u).origin));
  assert.deepEqual(away, [], `requests only to ${[...allowed]}`);
}

// ---- 1. Visitors -----------------------------------------------------------------

/** What each visitor does: clicks on the buy button, loads of the thanks page (after the hero page or before). */
const PLANS = [
  { clicks: 2, thanks: 0 },
  { clicks: 0, thanks: 0 },
  { clicks: 0, thanks: 2 },
  { clicks: 0, thanks: 0, thanksFirst: true },
  { clicks: 1, thanks: 1 },
  { clicks: 1, thanks: 0 },
];

test("1. one script tag: each visitor sees its variant bound, counted once, rewarded once per view", async (t) => {
  const expected = zeroCounts(Object.keys(HERO));
  const seen = {};
  for (const [i, plan] of PLANS.entries()) {
    const urls = [];
    const context = await visitorContext(urls);
    try {
      const page = await context.newPage();
      if (plan.thanksFirst) {
        // A load goal before any view rewards nothing.
        await page.goto(`${site.url}/up/thanks.html`);
        assert.equal(await bound(page), "bound");
        assert.equal(await queued(page), 0, `visitor ${i}: no reward without a view`);
      }
      const variant = await heroLoad(page, `${site.url}/up/hero.html`);
      seen[variant] = (seen[variant] ?? 0) + 1;
      for (let r = 0; r < 3; r++) {
        await page.reload();
        assert.equal(await bound(page), "bound");
        assert.equal(await variantShown(page), variant, `visitor ${i}: reload ${r + 1} shows the same variant`);
      }
      for (let c = 0; c < plan.clicks; c++) await page.click("#buy");
      await drain(page);
      for (let n = 0; n < plan.thanks; n++) {
        await page.goto(`${site.url}/up/thanks.html`);
        assert.equal(await bound(page), "bound");
        assert.equal(await page.textContent("#thanks"), "Thanks for your order");
        await drain(page);
      }
      expected[variant].views += 1;
      if (plan.clicks > 0 || plan.thanks > 0) expected[variant].totalReward += 1;
      // After each visitor, the server holds exactly what the visitors so far did.
      await w.api.countsReach(hero.uuid, expected);
      onlyOrigins(urls);
    } finally {
      await context.close();
    }
  }
  // Nothing more arrives later.
  assert.deepEqual(await w.api.counts(hero.uuid), expected);
  t.diagnostic(`variants seen ${JSON.stringify(seen)}; server counts = visitors' = ${JSON.stringify(expected)}`);
});

// ---- 2. No flicker; the page as written when Myna is not there -----------------------

/**
 * Injected before any page script: records, at every animation frame and
 * every DOM change, the state of the experiment's elements (whether each is
 * visible, its text) when it changed, with `performance.now()` (ms since the
 * navigation started).
 */
function probe(ids) {
  const samples = (window.__samples = []);
  const visible = (e) => {
    if (!e.isConnected || e.closest("[hidden]")) return false;
    const s = getComputedStyle(e);
    return s.visibility === "visible" && s.display !== "none";
  };
  let last = "";
  const sample = (how) => {
    const state = {};
    for (const id of ids) {
      const e = document.getElementById(id);
      if (e) state[id] = { visible: visible(e), text: e.textContent };
    }
    const text = JSON.stringify(state);
    if (text === last) return;
    last = text;
    samples.push({ t: performance.now(), how, state });
  };
  const frame = () => {
    sample("frame");
    requestAnimationFrame(frame);
  };
  requestAnimationFrame(frame);
  new MutationObserver(() => sample("mutation")).observe(document, {
    subtree: true,
    childList: true,
    attributes: true,
    characterData: true,
  });
}
const PROBED = ["headline", ...ALL_SHOWS];

/** The probe's samples once the bound headline was seen visible. */
function samplesUntilBound(page) {
  return until("the bound headline to be seen", () =>
    page.evaluate((headlines) => {
      const s = window.__samples ?? [];
      return s.some((x) => x.state.headline?.visible && headlines.includes(x.state.headline.text)) && s;
    }, Object.values(HERO).map((v) => v.settings.headline)),
  );
}

test("2a. no flicker: the default content of bound elements is never visible before the variant's", async () => {
  for (let i = 0; i < 3; i++) {
    const context = await visitorContext();
    try {
      await context.addInitScript(probe, PROBED);
      const page = await context.newPage();
      // A first visit (cold) and a second (warm, sticky).
      for (let load = 0; load < 2; load++) {
        const variant = await heroLoad(page, `${site.url}/up/hero.html`);
        const samples = await samplesUntilBound(page);
        const what = `visitor ${i} load ${load} (${variant}): ${JSON.stringify(samples)}`;
        for (const s of samples) {
          const h = s.state.headline;
          if (h?.visible) assert.equal(h.text, HERO[variant].settings.headline, `only the bound text is visible: ${what}`);
          for (const id of ALL_SHOWS) {
            if (s.state[id]?.visible) assert.ok(SHOWS[variant].includes(id), `${id} is never visible: ${what}`);
          }
        }
        assert.ok(
          samples.some((s) => s.state.headline && !s.state.headline.visible),
          `the probe saw the headline hidden before it was bound: ${what}`,
        );
      }
    } finally {
      await context.close();
    }
  }
});

/** Waits until the page shows as written: every element visible with its default content. */
function asWritten(page) {
  return until("the page to show as written", async () => {
    const s = await shown(page);
    return (
      s.headline === DEFAULT_HEADLINE &&
      s.shows.length === ALL_SHOWS.length &&
      s.next === "thanks.html?from=default" &&
      !s.tone &&
      s
    );
  });
}

test("2b. server down: the page shows as written", async () => {
  const context = await visitorContext();
  try {
    const page = await context.newPage();
    await page.goto(`${site.url}/down/hero.html`);
    await asWritten(page);
  } finally {
    await context.close();
  }
});

test("2c. the SDK does not come: after data-timeout the page shows as written, and no view is counted", async () => {
  const before = await w.api.counts(hero.uuid);
  const context = await visitorContext();
  const held = [];
  let released = false;
  try {
    // The SDK's files are held unanswered (a server that stalls).
    await context.route("**/v2/sdk/**", (route) => (released ? route.continue() : held.push(route)));
    await context.addInitScript(probe, PROBED);
    const page = await context.newPage();
    await page.goto(`${site.url}/quick/hero.html`);
    await asWritten(page);
    // Hidden while waiting, then as written (the default text the first one
    // visible). The sheet that hides is a constructed one: its removal is no
    // DOM mutation, so the probe sees it on its next animation frame.
    const samples = await until("the probe to see the headline", () =>
      page.evaluate(() => window.__samples.some((s) => s.state.headline?.visible) && window.__samples),
    );
    const first = samples.findIndex((s) => s.state.headline?.visible);
    assert.ok(first > 0 && samples[first - 1].state.headline, `hidden first: ${JSON.stringify(samples)}`);
    assert.ok(!samples[first - 1].state.headline.visible);
    assert.equal(samples[first].state.headline.text, DEFAULT_HEADLINE);
    assert.ok(held.length > 0, "the SDK was asked for");
    // When it comes late, the page stays as written and counts no view.
    released = true;
    for (const route of held.splice(0)) await route.continue();
    assert.equal(await bound(page), "bound");
    await drain(page);
    assert.equal(await queued(page), 0);
    await asWritten(page);
    assert.deepEqual(await w.api.counts(hero.uuid), before);
  } finally {
    await context.close();
  }
});

// ---- 3. The original clients' way: JSONP -------------------------------------------

test("3. myna.json?callback= by a script tag, as Myna.initRemote did: the deployment form", async () => {
  const context = await visitorContext();
  try {
    const page = await context.newPage();
    const types = [];
    page.on("response", (r) => {
      if (r.url().includes("/myna.json")) types.push(r.headers()["content-type"]);
    });
    const url = `${w.server.url}/v2/deployment/${key}/myna.json`;
    await page.goto(`${site.url}/jsonp.html?url=${encodeURIComponent(url)}`);
    const form = await page.evaluate(() => window.deployment);
    assert.deepEqual(types.map((t) => t.split(";")[0]), ["application/javascript"]);

    assert.deepEqual(
      Object.keys(form).sort(),
      ["apiKey", "apiRoot", "experiments", "latest", "typename", "uuid"],
      JSON.stringify(form),
    );
    assert.equal(form.typename, "deployment");
    assert.equal(form.uuid, key);
    assert.equal(form.apiKey, key);
    assert.equal(form.apiRoot, w.server.url);
    assert.equal(form.latest, url);
    // Only the published experiment; the draft is not there.
    assert.equal(form.experiments.length, 1, JSON.stringify(form.experiments));
    const [x] = form.experiments;
    assert.deepEqual(Object.keys(x).sort(), ["id", "name", "settings", "typename", "uuid", "variants"]);
    assert.equal(x.typename, "experiment");
    assert.equal(x.uuid, hero.uuid);
    assert.equal(x.id, "hero");
    assert.equal(x.name, "Hero banner");
    assert.deepEqual(x.settings, { "myna.web.sticky": true });
    assert.ok(Array.isArray(x.variants));
    assert.deepEqual(
      x.variants.map((v) => v.id),
      Object.keys(HERO),
      "variants in creation order",
    );
    for (const v of x.variants) {
      assert.deepEqual(Object.keys(v).sort(), ["id", "name", "settings", "typename", "weight"]);
      assert.equal(v.typename, "variant");
      assert.equal(v.name, HERO[v.id].name);
      assert.deepEqual(v.settings, HERO[v.id].settings);
      assert.ok(v.weight >= 0 && v.weight <= 1, `weight ${v.weight}`);
    }
    const sum = x.variants.reduce((s, v) => s + v.weight, 0);
    assert.ok(Math.abs(sum - 1) < 1e-9, `weights sum to 1: ${sum}`);
    // No counts, no account anywhere in the form.
    for (const field of ["views", "totalReward", "accountId"]) {
      assert.ok(!JSON.stringify(form).includes(`"${field}"`), `no ${field}`);
    }
  } finally {
    await context.close();
  }
});

// ---- 4. Figures (printed, not asserted) -----------------------------------------------

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

/** Ms from navigation start to the bound headline seen visible (the probe's time). */
async function timeToBound(page, url) {
  await page.goto(url);
  const samples = await samplesUntilBound(page);
  const headlines = Object.values(HERO).map((v) => v.settings.headline);
  return samples.find((s) => s.state.headline?.visible && headlines.includes(s.state.headline.text)).t;
}

test("4. figures: time to bound content, bytes the snippet loads", async () => {
  const LOADS = 7;
  const url = `${site.url}/up/hero.html`;
  const cold = [];
  const bytes = {};
  for (let i = 0; i < LOADS; i++) {
    const context = await visitorContext();
    try {
      await context.addInitScript(probe, PROBED);
      const page = await context.newPage();
      const responses = [];
      page.on("response", (r) => responses.push(r));
      cold.push(await timeToBound(page, url));
      if (i === 0) {
        // The preload boot.js starts and the SDK's own fetch are one download.
        const wasms = responses.filter((r) => new URL(r.url()).pathname.endsWith("/myna_sdk_bg.wasm"));
        assert.equal(wasms.length, 1, `the wasm downloaded once, not ${wasms.length} times`);
        for (const r of responses) {
          const name = /\/(myna\.js|index\.js|myna_sdk_bg\.wasm)$/.exec(new URL(r.url()).pathname)?.[1];
          if (name && r.url().startsWith(w.server.url)) {
            bytes[name] = (await r.request().sizes()).responseBodySize;
          }
        }
      }
    } finally {
      await context.close();
    }
  }
  const warm = [];
  const context = await visitorContext();
  try {
    await context.addInitScript(probe, PROBED);
    const page = await context.newPage();
    await timeToBound(page, url); // the first (cold) load fills the cache
    for (let i = 0; i < LOADS; i++) warm.push(await timeToBound(page, url));
  } finally {
    await context.close();
  }

  // The same three files from the server, compressed here (gzip -9).
  const js = await (await fetch(`${w.server.url}/v2/deployment/${key}/myna.js`)).arrayBuffer();
  const entry = /\/v2\/sdk\/[0-9a-f]+\/index\.js/.exec(Buffer.from(js).toString())?.[0];
  assert.ok(entry, "myna.js names the SDK it imports");
  const files = {
    "myna.js": Buffer.from(js),
    "index.js": Buffer.from(await (await fetch(w.server.url + entry)).arrayBuffer()),
    "myna_sdk_bg.wasm": Buffer.from(
      await (await fetch(w.server.url + entry.replace(/index\.js$/, "myna_sdk_bg.wasm"))).arrayBuffer(),
    ),
  };
  const gz = Object.fromEntries(
    Object.entries(files).map(([n, b]) => [n, gzipSync(b, { level: zlib.Z_BEST_COMPRESSION }).length]),
  );
  const raw = Object.fromEntries(Object.entries(files).map(([n, b]) => [n, b.length]));
  const total = (o) => Object.values(o).reduce((a, b) => a + b, 0);
  const ms = (xs) => xs.map((x) => Math.round(x)).join(", ");
  console.log(`deployment snippet: navigation start -> bound content visible`);
  console.log(`  cold (new context), median of ${LOADS}: ${median(cold).toFixed(0)} ms  [${ms(cold)}]`);
  console.log(`  warm (same context), median of ${LOADS}: ${median(warm).toFixed(0)} ms  [${ms(warm)}]`);
  console.log(`deployment snippet: bytes loaded (cold)`);
  console.log(`  as served (encoded body): ${JSON.stringify(bytes)} = ${total(bytes)} B`);
  console.log(`  raw: ${JSON.stringify(raw)} = ${total(raw)} B`);
  console.log(`  gzip -9: ${JSON.stringify(gz)} = ${total(gz)} B`);
});
