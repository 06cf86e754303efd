// Scenario 7: the bandit in motion. One variant converts at 30 %, the other at
// 10 %. 2,000 simulated visitors come one after another in each of a few
// pages (see pages/bandit.js: each visitor is a new SDK client on an emptied
// localStorage, connecting to get the weights served at that moment,
// suggesting, converting at its variant's rate, and flushing). The served
// weights must come to favour the better variant, and the server's counts
// must equal what the visitors did.

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { pause, pool, sameCounts, world } from "./harness.js";

const VISITORS = 2_000;
/** Pages (browser contexts) simulating visitors at once. */
const PAGES = 4;
const RATES = { good: 0.3, poor: 0.1 };
const VARIANTS = {
  poor: { name: "Poor: converts 10 %", settings: {} },
  good: { name: "Good: converts 30 %", settings: {} },
};

let w;
before(async () => {
  w = await world();
});
after(() => w?.close());

const fmt = (weights) => Object.entries(weights).map(([id, x]) => `${id} ${x.toFixed(3)}`).join(", ");

test("7. bandit in motion: after 2,000 visitors the served weights favour the variant converting at 30 % over 10 %", async (t) => {
  const experiment = await w.api.createExperiment("bandit in motion", VARIANTS);
  const apiKey = await w.api.createApiKey("bandit");
  const served = async () => {
    const form = await w.api.readAsPage(experiment.uuid, apiKey); // what pages are served
    return Object.fromEntries(Object.entries(form.variants).map(([id, v]) => [id, v.weight]));
  };
  const initial = await served();
  assert.ok(Math.abs(initial.good - 0.5) < 1e-9 && Math.abs(initial.poor - 0.5) < 1e-9, "no data: equal weights");

  let running = false;
  const pages = await Promise.all(
    Array.from({ length: PAGES }, async () => {
      const context = await w.browser.newContext();
      const page = await context.newPage();
      await page.goto(`${w.site.url}/bandit.html`);
      await page.waitForFunction(() => typeof window.simulate === "function");
      return { context, page };
    }),
  );
  try {
    // Watch the served weights while the visitors come.
    const trajectory = [];
    running = true;
    const watcher = (async () => {
      let next = 250;
      while (running) {
        const done = (await Promise.all(pages.map((p) => p.page.evaluate(() => window.done)))).reduce((a, b) => a + b, 0);
        if (done >= next) {
          trajectory.push(`after ${done}: ${fmt(await served())}`);
          next += 250;
        }
        await pause(250);
      }
    })();
    const started = Date.now();
    const share = VISITORS / PAGES;
    const results = await pool(PAGES, PAGES, (i) =>
      pages[i].page.evaluate((args) => window.simulate(args), {
        apiRoot: w.server.url,
        apiKey,
        experiment: experiment.uuid,
        visitors: share,
        seed: 7000 + i,
        rates: RATES,
      }),
    );
    const seconds = (Date.now() - started) / 1000;
    running = false;
    await watcher;

    const expected = { good: { views: 0, totalReward: 0 }, poor: { views: 0, totalReward: 0 } };
    for (const r of results) {
      assert.deepEqual(r.errors, []);
      for (const [id, c] of Object.entries(r.counts)) {
        expected[id].views += c.views;
        expected[id].totalReward += c.totalReward;
      }
    }
    assert.equal(expected.good.views + expected.poor.views, VISITORS, "one view per visitor");
    const counts = await w.api.countsReach(experiment.uuid, expected);
    assert.ok(sameCounts(counts, expected));

    // The weights are recomputed shortly after counts change: wait for the final ones.
    const form = await w.api.read(experiment.uuid);
    const final = await served();
    assert.ok(final.good > final.poor, `the better variant is favoured: ${fmt(final)}`);
    assert.ok(final.good > 0.9, `…strongly, after ${VISITORS} visitors: ${fmt(final)}`);
    assert.ok(expected.good.views > expected.poor.views, "most visitors were shown the better variant");
    const rate = (c) => (c.totalReward / c.views).toFixed(3);
    t.diagnostic(`${VISITORS} visitors from ${PAGES} pages in ${seconds.toFixed(1)} s`);
    t.diagnostic(`served weights: start ${fmt(initial)}; ${trajectory.join("; ")}; final ${fmt(final)}`);
    t.diagnostic(
      `server counts = visitors' counts: good ${counts.good.views} views / ${counts.good.totalReward} rewards ` +
        `(observed ${rate(counts.good)}), poor ${counts.poor.views} views / ${counts.poor.totalReward} rewards ` +
        `(observed ${rate(counts.poor)}); owner read weights ${fmt(Object.fromEntries(Object.entries(form.variants).map(([id, v]) => [id, v.weight])))}`,
    );
  } finally {
    running = false;
    await Promise.all(pages.map((p) => p.context.close()));
  }
});
