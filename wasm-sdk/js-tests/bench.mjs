// The browser benchmark: what the SDK costs a page, in headless Chromium,
// through the built package's JS API (the boundary crossings included).
// Prints figures; asserts nothing (timings are not tests). No server: the
// client is given a snapshot and never sends.
//   usage: node bench.mjs        (scripts/sdk-bench builds the package first)
import { IMPORT_MAP, launch, servePage } from "./browser.mjs";

const page = `<!doctype html><html><head>${IMPORT_MAP}</head><body><script type="module">
import { Myna } from "myna-sdk";
const uuid = "6f1c1a52-3b0e-4d8e-9f39-0c6f5c1d2a11";
const snapshot = {
  typename: "experiment", subtype: "summary", uuid, name: "bench", visibility: "published",
  variants: { a: { name: "a", weight: 0.5, settings: { label: "A" } }, b: { name: "b", weight: 0.5, settings: { label: "B" } } },
};
let run = 0;
const client = (extra = {}) => Myna.connect({
  apiRoot: "http://127.0.0.1:9", apiKey: "bench", storageKey: "bench" + run++,
  flushIntervalMs: 1e9, batchSize: 1e6, maxQueueEvents: 1e7, maxQueueBytes: 1e9,
  experiments: [snapshot], ...extra,
});
const tick = () => new Promise((ok) => setTimeout(ok, 0));
const us = (ms, n) => (1000 * ms) / n;
const results = {};

// 1. Queueing in a burst: validation by core, the batch, the wire JSON;
//    the localStorage write happens once, in the microtask after the loop.
//    Seven rounds on fresh clients; the median (machines are shared).
const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
{
  const N = 10000, ROUNDS = 7;
  const queue = [], withWrite = [];
  for (let r = 0; r < ROUNDS; r++) {
    const myna = await client();
    const expt = myna.experiment(uuid);
    for (let i = 0; i < 1000; i++) expt.view("a");
    await tick();
    const t0 = performance.now();
    for (let i = 0; i < N; i++) expt.view("a");
    const t1 = performance.now();
    await Promise.resolve();
    const t2 = performance.now();
    queue.push(us(t1 - t0, N));
    withWrite.push(us(t2 - t0, N));
    myna.close();
    localStorage.clear();
  }
  results.burst = { n: N, rounds: ROUNDS, queue: median(queue), min: Math.min(...queue), withWrite: median(withWrite) };
}

// 2. One event at a time, each followed by its localStorage write (the
//    queue holding 1 to 20 events, as between flushes), 100 rounds.
{
  const R = 100, K = 20;
  let total = 0;
  for (let r = 0; r < R; r++) {
    const myna = await client();
    const expt = myna.experiment(uuid);
    const t0 = performance.now();
    for (let k = 0; k < K; k++) {
      expt.view("a");
      await Promise.resolve(); // the write runs here
    }
    total += performance.now() - t0;
    myna.close();
    localStorage.clear();
  }
  results.steady = { n: R * K, perEvent: us(total, R * K) };
}

// 3. suggest: the sticky case (the visitor's state, no event), median of
//    seven rounds; then a fresh draw each time (unstick, draw by weight, one
//    view queued, the state written).
{
  const N = 10000;
  const myna = await client();
  const expt = myna.experiment(uuid);
  expt.suggest();
  for (let i = 0; i < 1000; i++) expt.suggest();
  const sticky = [];
  for (let r = 0; r < 7; r++) {
    const t0 = performance.now();
    for (let i = 0; i < N; i++) expt.suggest();
    sticky.push(us(performance.now() - t0, N));
  }
  results.sticky = { n: N, perCall: median(sticky) };
  const M = 5000;
  let t0 = performance.now();
  for (let i = 0; i < M; i++) expt.unstick();
  const unstick = us(performance.now() - t0, M);
  t0 = performance.now();
  for (let i = 0; i < M; i++) {
    expt.unstick();
    expt.suggest();
  }
  results.fresh = { n: M, perCall: us(performance.now() - t0, M), unstick };
  myna.close();
  localStorage.clear();
}
window.results = results;
</script></body></html>`;

const site = await servePage(page);
const browser = await launch();
try {
  const tab = await browser.newPage();
  const errors = [];
  tab.on("pageerror", (e) => errors.push(e.message));
  await tab.goto(site.origin);
  await tab.waitForFunction(() => window.results, null, { timeout: 300_000, polling: 200 }).catch(() => {
    throw new Error(`the benchmark page did not finish: ${errors.join("; ")}`);
  });
  const r = await tab.evaluate(() => window.results);
  const f = (x) => x.toFixed(2).padStart(7);
  console.log(`myna-sdk browser benchmark (headless Chromium ${browser.version()}, through the package's JS API)`);
  console.log(`  queue one event (view), bursts of ${r.burst.n}:      ${f(r.burst.queue)} µs/event   (goal ≤ 5 µs; median of ${r.burst.rounds}, best ${r.burst.min.toFixed(2)})`);
  console.log(`    the same, with the burst's localStorage write: ${f(r.burst.withWrite)} µs/event`);
  console.log(`  queue one event + its own localStorage write:  ${f(r.steady.perEvent)} µs/event   (queue of 1-20, ${r.steady.n} events)`);
  console.log(`  suggest, sticky (no event):                    ${f(r.sticky.perCall)} µs/call    (median of 7 × ${r.sticky.n} calls)`);
  console.log(`  unstick + suggest (draw by weight, one view):  ${f(r.fresh.perCall)} µs/call    (${r.fresh.n} calls; unstick alone ${r.fresh.unstick.toFixed(2)} µs)`);
} finally {
  await browser.close();
  await site.close();
}
