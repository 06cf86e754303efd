// The browser benchmark: what the SDK costs a page, in headless Chromium,
// through the built package's JS API, side by side with GrowthBook's
// JavaScript SDK (@growthbook/growthbook, pinned in the root package.json as
// a dev dependency of this benchmark only) on the same experiment, so every
// change is measured against a peer. Prints figures; asserts nothing
// (timings are not tests). No Myna server: both SDKs get the experiment
// inlined in the page and make their decision without the network.
//   usage: node bench.mjs        (scripts/sdk-bench builds the package first)
import { existsSync } from "node:fs";
import { createServer } from "node:http";
import { readFile } from "node:fs/promises";
import { join, normalize, sep } from "node:path";
import { gzipSync } from "node:zlib";
import { launch, repo } from "./browser.mjs";

/** Page loads per SDK, cold and warm each (the figure is their median). */
const LOADS = 21;
/** The goal for one `reward()` (issue 16). */
const REWARD_GOAL_US = 10;

// ---- The experiment, the same for both SDKs: three variants weighted
// 1/2, 1/4, 1/4, each with a label setting.
const UUID = "6f1c1a52-3b0e-4d8e-9f39-0c6f5c1d2a11";
const VARIANTS = [
  ["a", 0.5, "A"],
  ["b", 0.25, "B"],
  ["c", 0.25, "C"],
];
/** Myna's snapshot of it (what `experiments: [snapshot]` takes). */
const SNAPSHOT = {
  typename: "experiment",
  subtype: "summary",
  uuid: UUID,
  name: "bench",
  visibility: "published",
  variants: Object.fromEntries(VARIANTS.map(([name, weight, label]) => [name, { name, weight, settings: { label } }])),
};
/** GrowthBook's: a feature whose one rule is the experiment, bucketed by the visitor's `id`. */
const FEATURES = {
  headline: {
    defaultValue: null,
    rules: [
      {
        key: "bench",
        variations: VARIANTS.map(([, , label]) => ({ label })),
        weights: VARIANTS.map(([, weight]) => weight),
        meta: VARIANTS.map(([key]) => ({ key })),
        coverage: 1,
        hashAttribute: "id",
        bucketVersion: 1,
      },
    ],
  },
};

// ---- The pages. Each SDK is imported as a page imports a package, through
// an import map: myna-sdk from the built package (its index.js loads the
// wasm beside it), GrowthBook from its one-file ES module bundle.
const IMPORTS = `<script type="importmap">{"imports":{"myna-sdk":"/pkg/index.js","@growthbook/growthbook":"/gb/esm.min.js"}}</script>`;
const GB_BUNDLE = join(repo, "node_modules", "@growthbook", "growthbook", "dist", "bundles", "esm.min.js");
const DATA = `const uuid = ${JSON.stringify(UUID)};
const snapshot = ${JSON.stringify(SNAPSHOT)};
const features = ${JSON.stringify(FEATURES)};`;
// What a page logs once its figures are in `window`: the harness waits for
// that console message instead of polling the page, so nothing of its own
// runs in the page (an injected script, ~10 ms of parsing) while an SDK is
// still loading.
const DONE = "bench: done";
const page = (script) =>
  `<!doctype html><html><head>${IMPORTS}</head><body><h1 id="headline">…</h1><script type="module">
const DONE = ${JSON.stringify(DONE)};
${script}
</script></body></html>`;

// A page load up to the decision, as a page would write it: connect with
// the experiment inlined, decide, show the variant. `window.decision` holds
// the times (ms since navigation start) the SDK's module was evaluated, the
// SDK was ready (Myna connected, GrowthBook initialized) and the variant
// was known.
const LOAD_PAGES = {
  myna: page(`import { Myna } from "myna-sdk";
const evaluated = performance.now();
${DATA}
const myna = await Myna.connect({ apiRoot: location.origin + "/api", apiKey: "bench", flushIntervalMs: 60000, experiments: [snapshot] });
const ready = performance.now();
const variant = myna.experiment(uuid).suggest();
const decided = performance.now();
document.getElementById("headline").textContent = variant.settings.label;
window.decision = { variant: variant.name, evaluated, ready, decided };
console.log(DONE);`),
  growthbook: page(`import { GrowthBook, LocalStorageStickyBucketService } from "@growthbook/growthbook";
const evaluated = performance.now();
${DATA}
// GrowthBook buckets by an id the page supplies: kept in localStorage.
let id = localStorage.getItem("visitor");
if (!id) localStorage.setItem("visitor", (id = crypto.randomUUID()));
const views = [];
const gb = new GrowthBook({
  attributes: { id },
  stickyBucketService: new LocalStorageStickyBucketService(),
  trackingCallback: (experiment, result) => views.push(result.key),
});
await gb.init({ payload: { features } });
const ready = performance.now();
const value = gb.getFeatureValue("headline", null);
const decided = performance.now();
document.getElementById("headline").textContent = value.label;
window.decision = { variant: value.label, evaluated, ready, decided, views: views.length };
console.log(DONE);`),
};

// The per-call figures, both SDKs in one page, rounds alternating which SDK
// goes first so that machine noise hits both alike. The page is
// cross-origin isolated (the server sends COOP and COEP): Chromium's clock
// then ticks in 5 µs steps instead of 100 µs.
const CALLS_PAGE = page(`import { Myna } from "myna-sdk";
import { GrowthBook, LocalStorageStickyBucketService } from "@growthbook/growthbook";
${DATA}
const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
const tick = () => new Promise((ok) => setTimeout(ok, 0));
const us = (ms, n) => (1000 * ms) / n;
let run = 0;
const myna = (extra = {}) => Myna.connect({
  apiRoot: "http://127.0.0.1:9", apiKey: "bench", storageKey: "bench" + run++,
  flushIntervalMs: 1e9, batchSize: 1e6, maxQueueEvents: 1e7, maxQueueBytes: 1e9,
  experiments: [snapshot], ...extra,
});
let views = 0;
const growthbook = async (id) => {
  const gb = new GrowthBook({
    attributes: { id },
    stickyBucketService: new LocalStorageStickyBucketService(),
    trackingCallback: () => void views++,
  });
  await gb.init({ payload: { features } });
  return gb;
};
/** Medians of \`rounds\` rounds of each measure, alternating which runs first. */
async function interleaved(rounds, measures) {
  const names = Object.keys(measures);
  const figures = Object.fromEntries(names.map((n) => [n, []]));
  for (let r = 0; r < rounds; r++) {
    for (const n of r % 2 ? [...names].reverse() : names) figures[n].push(await measures[n](r));
  }
  return Object.fromEntries(names.map((n) => [n, median(figures[n])]));
}
const results = {};

// 1. Sticky repeat decision: the visitor already has a variant; no event,
//    no storage write. 11 rounds of 10,000 calls each.
{
  const N = 10000;
  const m = await myna();
  const expt = m.experiment(uuid);
  const gb = await growthbook("sticky-visitor");
  for (let i = 0; i < 1000; i++) expt.suggest(), gb.getFeatureValue("headline", null);
  await tick();
  results.sticky = {
    n: N,
    ...(await interleaved(11, {
      myna: () => {
        const t0 = performance.now();
        for (let i = 0; i < N; i++) expt.suggest();
        return us(performance.now() - t0, N);
      },
      growthbook: () => {
        const t0 = performance.now();
        for (let i = 0; i < N; i++) gb.getFeatureValue("headline", null);
        return us(performance.now() - t0, N);
      },
    })),
  };
  m.close();
  localStorage.clear();
}

// 2. A new visitor's decision plus its view, one at a time (each call's
//    storage writes done before the next: a microtask later for Myna,
//    within the call for GrowthBook). Myna: unstick, then suggest (a draw
//    by weight, a view queued, the queue and the state persisted).
//    GrowthBook: setAttributes with a new id (its sticky document looked
//    up in localStorage), then getFeatureValue (hash, the document saved to
//    localStorage, its trackingCallback as the view). Rounds of 20 calls on
//    a fresh client (a queue of 1 to 20 events, as between flushes).
{
  const K = 20;
  let mynaEvents = 0;
  let gbViews = 0;
  results.fresh = {
    n: K,
    ...(await interleaved(101, {
      myna: async () => {
        const m = await myna();
        const expt = m.experiment(uuid);
        await tick();
        const t0 = performance.now();
        for (let k = 0; k < K; k++) {
          expt.unstick();
          expt.suggest();
          await Promise.resolve();
        }
        const t = us(performance.now() - t0, K);
        mynaEvents += m.queued / K;
        m.close();
        localStorage.clear();
        return t;
      },
      growthbook: async (r) => {
        const gb = await growthbook("round" + r);
        await tick();
        const before = views;
        const t0 = performance.now();
        for (let k = 0; k < K; k++) {
          await gb.setAttributes({ id: "round" + r + "-visitor" + k });
          gb.getFeatureValue("headline", null);
          await Promise.resolve();
        }
        const t = us(performance.now() - t0, K);
        gbViews += (views - before) / K;
        localStorage.clear();
        return t;
      },
    })),
  };
  results.fresh.mynaEvents = mynaEvents / 101;
  results.fresh.gbViews = gbViews / 101;
}

// 3. reward(), one at a time (Myna only: GrowthBook has no reward): each
//    after its own view, each timed from the call to the microtask after it
//    (where the queue is persisted); rounds of 20 on a fresh client. Beside
//    it, the floor its storage sets: the writes a reward makes (the
//    visitor's state rewritten, a queue record added), as bare setItem
//    calls of the same keys and lengths, timed the same way.
{
  const R = 101, K = 20;
  const perRound = [], floorPerRound = [];
  let refused = 0;
  for (let r = 0; r < R; r++) {
    const m = await myna();
    const expt = m.experiment(uuid);
    await tick();
    let total = 0;
    for (let k = 0; k < K; k++) {
      expt.view("a");
      await Promise.resolve();
      const t0 = performance.now();
      if (!expt.reward()) refused++;
      await Promise.resolve();
      total += performance.now() - t0;
    }
    perRound.push(us(total, K));
    const keys = Object.keys(localStorage);
    const state = keys.find((k) => k.includes(":s:"));
    const record = keys.filter((k) => /:t:[^:]+:[0-9]+$/.test(k)).sort().pop();
    const stateText = localStorage.getItem(state), recordText = localStorage.getItem(record);
    m.close();
    localStorage.clear();
    let floor = 0;
    for (let k = 0; k < K; k++) {
      const t0 = performance.now();
      localStorage.setItem(state, stateText.slice(0, -1) + (k % 10));
      localStorage.setItem(record.replace(/[0-9]+$/, String(k)), recordText);
      await Promise.resolve();
      floor += performance.now() - t0;
    }
    floorPerRound.push(us(floor, K));
    localStorage.clear();
  }
  results.reward = { n: R * K, perCall: median(perRound), floor: median(floorPerRound), refused };
}

// ---- Myna alone: its queue's costs.

// 4. Queueing in a burst: validation by core, the batch, the wire JSON;
//    the localStorage write happens once, in the microtask after the loop.
//    Seven rounds on fresh clients; the median.
{
  const N = 10000, ROUNDS = 7;
  const queue = [], withWrite = [];
  for (let r = 0; r < ROUNDS; r++) {
    const m = await myna();
    const expt = m.experiment(uuid);
    for (let i = 0; i < 1000; i++) expt.view("a");
    await tick();
    const t0 = performance.now();
    for (let i = 0; i < N; i++) expt.view("a");
    const t1 = performance.now();
    await Promise.resolve();
    const t2 = performance.now();
    queue.push(us(t1 - t0, N));
    withWrite.push(us(t2 - t0, N));
    m.close();
    localStorage.clear();
  }
  results.burst = { n: N, rounds: ROUNDS, queue: median(queue), min: Math.min(...queue), withWrite: median(withWrite) };
}

// 5. One view at a time, each followed by its localStorage write (the
//    queue holding 1 to 20 events), 100 rounds.
{
  const R = 100, K = 20;
  let total = 0;
  for (let r = 0; r < R; r++) {
    const m = await myna();
    const expt = m.experiment(uuid);
    const t0 = performance.now();
    for (let k = 0; k < K; k++) {
      expt.view("a");
      await Promise.resolve();
    }
    total += performance.now() - t0;
    m.close();
    localStorage.clear();
  }
  results.steady = { n: R * K, perEvent: us(total, R * K) };
}
// 6. One view at a time with its own write, the queue already holding 1,000
//    events (nothing flushed): below its bounds, then full at the default
//    bounds (1,000 events, 100,000 bytes), where each view pushes the
//    oldest out. Each costs in proportion to the event, not to the queue.
{
  const K = 200, ROUNDS = 5;
  const long = { below: [], full: [] };
  for (let r = 0; r < ROUNDS; r++) {
    for (const [name, extra] of [["below", {}], ["full", { maxQueueEvents: 1000, maxQueueBytes: 100000, batchSize: 20 }]]) {
      const m = await myna(extra);
      const expt = m.experiment(uuid);
      for (let i = 0; i < 1000; i++) expt.view("a");
      await tick();
      const t0 = performance.now();
      for (let k = 0; k < K; k++) {
        expt.view("a");
        await Promise.resolve();
      }
      long[name].push(us(performance.now() - t0, K));
      m.close();
      localStorage.clear();
    }
  }
  results.long = { n: K, rounds: ROUNDS, below: median(long.below), full: median(long.full) };
}
results.isolated = crossOriginIsolated;
window.results = results;
console.log(DONE);`);

// ---- A loopback static server (pages fulfilled by page.route cannot
// reach loopback in Chromium): the pages, the package at /pkg/ and
// GrowthBook's bundle at /gb/. Assets are cacheable for a day, so a second
// load takes them from the HTTP cache; pages are never cached. It logs
// every asset request (which files a load fetched).
const PKG = join(repo, "wasm-sdk", "pkg");
const TYPES = { js: "text/javascript", wasm: "application/wasm" };

function assetFile(path) {
  if (path === "/gb/esm.min.js") return GB_BUNDLE;
  const file = normalize(join(PKG, path.replace(/^\/pkg\//, "")));
  return path.startsWith("/pkg/") && file.startsWith(PKG + sep) ? file : null;
}

async function serve() {
  const fetched = [];
  const pages = { "/myna.html": LOAD_PAGES.myna, "/growthbook.html": LOAD_PAGES.growthbook, "/calls.html": CALLS_PAGE };
  const server = createServer(async (req, res) => {
    const path = new URL(req.url, "http://localhost").pathname;
    if (pages[path]) {
      const isolation =
        path === "/calls.html" ? { "cross-origin-opener-policy": "same-origin", "cross-origin-embedder-policy": "require-corp" } : {};
      res.writeHead(200, { "content-type": "text/html", "cache-control": "no-store", ...isolation });
      return res.end(pages[path]);
    }
    const file = assetFile(path);
    if (file) {
      try {
        const body = await readFile(file);
        fetched.push(path);
        res.writeHead(200, {
          "content-type": TYPES[path.split(".").pop()] ?? "application/octet-stream",
          "cache-control": "public, max-age=86400",
        });
        return res.end(body);
      } catch {
        // fall through to 404
      }
    }
    res.writeHead(path === "/favicon.ico" ? 204 : 404);
    res.end();
  });
  await new Promise((ok) => server.listen(0, "127.0.0.1", ok));
  return {
    origin: `http://127.0.0.1:${server.address().port}`,
    fetched,
    close: () => new Promise((ok) => server.close(ok)),
  };
}

/** Opens `path` in a new tab of `context`; the page's `window[key]` and the assets the load fetched. */
async function open(context, site, path, key, timeout) {
  const tab = await context.newPage();
  const errors = [];
  tab.on("pageerror", (e) => errors.push(e.message));
  const mark = site.fetched.length;
  try {
    const done = tab.waitForEvent("console", { predicate: (m) => m.text() === DONE, timeout });
    await tab.goto(site.origin + path, { waitUntil: "commit" });
    await done.catch(() => {
      throw new Error(`${path} did not finish: ${errors.join("; ") || "no page error"}`);
    });
    const value = await tab.evaluate((k) => window[k], key);
    return { value, fetched: site.fetched.slice(mark) };
  } finally {
    await tab.close();
  }
}

const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
const gzipped = async (path) => gzipSync(await readFile(assetFile(path)), { level: 9 }).length;

if (!existsSync(GB_BUNDLE)) {
  console.error(`sdk-bench: ${GB_BUNDLE} is missing: run scripts/install-tools (npm ci)`);
  process.exit(1);
}
const site = await serve();
const browser = await launch();
try {
  // Page loads: per round, each SDK (the order alternating) in a fresh
  // browser context (an empty HTTP cache, empty storage): the cold load,
  // then a second load in the same context (HTTP cache warm, the visitor's
  // sticky state in localStorage). Round 0 warms the browser up and is
  // not counted.
  const loads = { myna: { cold: [], warm: [] }, growthbook: { cold: [], warm: [] } };
  for (let r = -1; r < LOADS; r++) {
    for (const sdk of r % 2 ? ["growthbook", "myna"] : ["myna", "growthbook"]) {
      const context = await browser.newContext();
      try {
        for (const when of ["cold", "warm"]) {
          const { value, fetched } = await open(context, site, `/${sdk}.html`, "decision", 30_000);
          if (r >= 0) loads[sdk][when].push({ ...value, fetched });
        }
      } finally {
        await context.close();
      }
    }
  }
  const callsContext = await browser.newContext();
  const calls = (await open(callsContext, site, "/calls.html", "results", 600_000)).value;
  await callsContext.close();

  // ---- The figures.
  const bytes = {};
  for (const sdk of ["myna", "growthbook"]) {
    const files = [...new Set(loads[sdk].cold[0].fetched)];
    const sizes = await Promise.all(files.map(gzipped));
    bytes[sdk] = { total: sizes.reduce((a, b) => a + b, 0), parts: files.map((f, i) => `${f.split("/").pop()} ${sizes[i].toLocaleString("en")}`) };
  }
  const since = { total: () => 0, sdk: (d) => d.evaluated, decision: (d) => d.ready };
  const times = (sdk, when, part) => loads[sdk][when].map((d) => d.decided - since[part](d));
  const figure = (sdk, when, part) => median(times(sdk, when, part));
  // The middle half of the loads (a shared machine's noise, at a glance).
  const quartiles = (sdk, when) => {
    const xs = times(sdk, when, "total").sort((a, b) => a - b);
    return `${xs[xs.length >> 2].toFixed(0)}–${xs[(3 * xs.length) >> 2].toFixed(0)} ms`;
  };
  const spread = (when) =>
    console.log(`      middle half of the loads: myna-sdk ${quartiles("myna", when)}, growthbook ${quartiles("growthbook", when)}`);
  const refetched = (sdk) => loads[sdk].warm.reduce((n, d) => n + d.fetched.length, 0);

  const ratio = (a, b) => `${(a / b).toFixed(2)}×`;
  const number = (x, digits) => x.toLocaleString("en", { minimumFractionDigits: digits, maximumFractionDigits: digits });
  const line = (label, ...columns) => console.log(`  ${label.padEnd(50)}${columns.map((c) => c.padStart(12)).join("")}`);
  const row = (label, myna, gb, unit, digits) =>
    line(label, number(myna, digits) + unit, number(gb, digits) + unit, ratio(myna, gb));
  const gbVersion = JSON.parse(await readFile(join(GB_BUNDLE, "..", "..", "..", "package.json"), "utf8")).version;
  console.log(`myna-sdk against GrowthBook's JavaScript SDK ${gbVersion} (dist/bundles/esm.min.js), headless Chromium ${browser.version()}`);
  console.log(`the same experiment inlined in each page: 3 variants weighted 1/2, 1/4, 1/4; sticky state in localStorage`);
  line("", "myna-sdk", "growthbook", "myna/gb");
  console.log(`  bytes a page loads (gzip -9):`);
  row("  the SDK's files, as the page fetched them", bytes.myna.total, bytes.growthbook.total, " B", 0);
  console.log(`      myna-sdk: ${bytes.myna.parts.join(" + ")}; growthbook: ${bytes.growthbook.parts.join(" + ")}`);
  console.log(`  navigation start → variant known (medians of ${LOADS} loads each, interleaved):`);
  row("  cold (fresh context, empty HTTP cache)", figure("myna", "cold", "total"), figure("growthbook", "cold", "total"), " ms", 1);
  spread("cold");
  row("    the SDK's part (module evaluated → decision)", figure("myna", "cold", "sdk"), figure("growthbook", "cold", "sdk"), " ms", 1);
  row("      of it the first decision (ready → decision)", figure("myna", "cold", "decision"), figure("growthbook", "cold", "decision"), " ms", 2);
  row("  warm (second load, HTTP cache warm)", figure("myna", "warm", "total"), figure("growthbook", "warm", "total"), " ms", 1);
  spread("warm");
  row("    the SDK's part (module evaluated → decision)", figure("myna", "warm", "sdk"), figure("growthbook", "warm", "sdk"), " ms", 1);
  row("      of it the first decision (ready → decision)", figure("myna", "warm", "decision"), figure("growthbook", "warm", "decision"), " ms", 2);
  console.log(`      assets the ${LOADS} warm loads fetched again: myna-sdk ${refetched("myna")}, growthbook ${refetched("growthbook")}`);
  console.log(`  per call (medians of interleaved rounds; the page's clock ticks in ${calls.isolated ? "5 µs, cross-origin isolated" : "100 µs, NOT isolated"}):`);
  row(`  sticky repeat decision (11 × ${calls.sticky.n} calls)`, calls.sticky.myna, calls.sticky.growthbook, " µs", 2);
  row(`  a new visitor's decision + its view (101 × ${calls.fresh.n})`, calls.fresh.myna, calls.fresh.growthbook, " µs", 2);
  console.log(
    `      myna: unstick + suggest, ${calls.fresh.mynaEvents.toFixed(2)} events queued per call; ` +
      `growthbook: setAttributes(new id) + getFeatureValue, ${calls.fresh.gbViews.toFixed(2)} trackingCallback calls per call`,
  );
  line("  reward(), one at a time (101 × 20)", number(calls.reward.perCall, 2) + " µs", "none", "");
  console.log(
    `      goal ≤ ${REWARD_GOAL_US} µs: ${calls.reward.perCall <= REWARD_GOAL_US ? "met" : "NOT met"}; each call after its own view, GrowthBook has no reward` +
      `${calls.reward.refused ? `; ${calls.reward.refused} of ${calls.reward.n} refused (no reward queued)` : ""}`,
  );
  console.log(
    `      its writes alone (the visitor's state, a queue record: two bare setItem calls of the same lengths): ${calls.reward.floor.toFixed(2)} µs`,
  );
  const f = (x) => x.toFixed(2).padStart(7);
  const { burst, steady } = calls;
  console.log(`myna-sdk alone, its event queue:`);
  console.log(`  queue one event (view), bursts of ${burst.n}:      ${f(burst.queue)} µs/event   (goal ≤ 5 µs; median of ${burst.rounds}, best ${burst.min.toFixed(2)})`);
  console.log(`    the same, with the burst's localStorage write: ${f(burst.withWrite)} µs/event`);
  console.log(`  queue one event + its own localStorage write:  ${f(steady.perEvent)} µs/event   (queue of 1-20, ${steady.n} events)`);
  console.log(`  the same, 1,000 events queued already:         ${f(calls.long.below)} µs/event   (median of ${calls.long.rounds} rounds of ${calls.long.n})`);
  console.log(`  the same, the queue full (default bounds):     ${f(calls.long.full)} µs/event   (each view drops the oldest)`);
} finally {
  await browser.close();
  await site.close();
}
