// Scenarios 1 and 2: a landing page A/B test, through the POST transport and
// through JSONP. 200 visitors (each a fresh browser context: its own
// localStorage) load the page, which `suggest`s a headline; some reload it,
// some click "Sign up" (once or twice). The server's counts must equal
// exactly what the pages queued, and every visitor must have seen one variant
// (and been counted as one view) however often it reloaded.

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import {
  HEADLINES,
  drain,
  landingUrl,
  load,
  pool,
  reload,
  seeded,
  tally,
  visitOf,
  world,
  zeroCounts,
} from "./harness.js";

const VISITORS = 200;
/** Visitors browsing at once (each its own context). */
const CONCURRENT = 6;

let w;
before(async () => {
  w = await world();
});
after(() => w?.close());

/** What visitor `i` does, from a seeded generator: the same every run. */
function plan(rng) {
  const r = rng();
  const reloads = r < 0.6 ? 0 : r < 0.9 ? 1 : 2;
  const c = rng();
  const clicks = c < 0.6 ? 0 : c < 0.9 ? 1 : 2;
  // Some reload before their events were sent (the SDK beacons at pagehide
  // and the next page sends the sealed batch again, under the same id).
  const flushBeforeReload = rng() < 0.5;
  return { reloads, clicks, flushBeforeReload };
}

/**
 * One visitor: resolves to every page load's `visit` record, and how its
 * record requests travelled (Chromium's resource types: `fetch`, `script`
 * for JSONP, `ping` for beacons).
 */
async function visitor(url, p) {
  const context = await w.browser.newContext();
  const sends = [];
  context.on("request", (r) => {
    if (r.url().includes("/record") && r.method() !== "OPTIONS") sends.push(r.resourceType());
  });
  try {
    const page = await context.newPage();
    const visits = [];
    const decided = (v) => {
      assert.ok(v.variant, `the page decided: ${JSON.stringify(v)}`);
      return v;
    };
    let visit = decided(await load(page, url));
    const heading = await page.textContent("#headline");
    assert.equal(heading, HEADLINES[visit.variant]?.settings.headline, "the page shows its variant's headline");
    if (p.clicks >= 1) await page.click("#signup");
    for (let r = 0; r < p.reloads; r++) {
      if (p.flushBeforeReload) await drain(page);
      visits.push(await visitOf(page));
      visit = decided(await reload(page));
      assert.equal(await page.textContent("#headline"), heading, "a reload shows the same headline");
    }
    if (p.clicks >= 2) await page.click("#signup"); // already rewarded: nothing more is queued
    await drain(page);
    visits.push(await visitOf(page));
    return { visits, sends };
  } finally {
    await context.close();
  }
}

async function landingTest(t, transport) {
  const experiment = await w.api.createExperiment(`landing (${transport})`, HEADLINES);
  const apiKey = await w.api.createApiKey(`landing ${transport}`);
  // A generous request timeout: CI machines are slow and shared; a slow answer is not what this tests.
  const url = landingUrl(w.site, { apiRoot: w.server.url, apiKey, experiment: experiment.uuid, transport, timeoutMs: 60_000 });
  const rng = seeded(transport === "post" ? 1 : 2);
  const plans = Array.from({ length: VISITORS }, () => plan(rng));

  const started = Date.now();
  const visitors = await pool(VISITORS, CONCURRENT, (i) => visitor(url, plans[i]));
  const seconds = (Date.now() - started) / 1000;

  const expected = zeroCounts(Object.keys(HEADLINES));
  const sends = {};
  for (const [i, { visits, sends: kinds }] of visitors.entries()) {
    for (const k of kinds) sends[k] = (sends[k] ?? 0) + 1;
    // Events travel by the chosen transport (and by beacon when a page is left).
    const own = transport === "jsonp" ? "script" : "fetch";
    const p = plans[i];
    // A visitor who never reloaded sent from its one page, which is seen.
    // One who reloaded may have had every batch sent while a page was being
    // left, a request Playwright does not always report (CI: a visitor that
    // reloaded twice, none seen): the visitors who did not reload prove the
    // transport, and the counts below that nothing was lost or doubled.
    if (p.reloads === 0) assert.ok(kinds.includes(own), `visitor ${i} sent by ${own}: ${kinds}`);
    assert.deepEqual(kinds.filter((k) => k !== own && k !== "ping"), [], `visitor ${i}: only ${own} and beacons`);
    assert.equal(visits.length, p.reloads + 1);
    for (const v of visits) {
      assert.equal(v.connectError, null, `visitor ${i} connected`);
      assert.equal(v.experimentError, null, `visitor ${i} found the experiment`);
      assert.deepEqual(v.errors, [], `visitor ${i}: no error events`);
      tally(expected, v);
    }
    const variants = new Set(visits.map((v) => v.variant));
    assert.equal(variants.size, 1, `visitor ${i} saw one variant over ${visits.length} loads`);
    const views = visits.reduce((n, v) => n + v.views, 0);
    const rewards = visits.reduce((n, v) => n + v.rewards, 0);
    assert.equal(views, 1, `visitor ${i} queued one view in all`);
    assert.equal(rewards, p.clicks > 0 ? 1 : 0, `visitor ${i} queued one reward per view`);
    const calls = visits.flatMap((v) => v.rewardCalls);
    assert.deepEqual(calls, p.clicks === 0 ? [] : p.clicks === 1 ? [true] : [true, false]);
  }
  const totalViews = Object.values(expected).reduce((n, c) => n + c.views, 0);
  assert.equal(totalViews, VISITORS);

  const server = await w.api.countsReach(experiment.uuid, expected);
  // Nothing more arrives later (e.g. a beaconed batch counted twice).
  assert.deepEqual(await w.api.counts(experiment.uuid), server);
  const loads = visitors.reduce((n, v) => n + v.visits.length, 0);
  t.diagnostic(
    `${transport}: ${VISITORS} visitors, ${loads} page loads in ${seconds.toFixed(1)} s; ` +
      `record requests by type ${JSON.stringify(sends)}; ` +
      `server counts = pages' counts = ${JSON.stringify(server)}`,
  );
}

test("1. landing page A/B test: the server counts exactly what 200 visitors did (POST)", (t) =>
  landingTest(t, "post"));

test("2. the same through the JSONP transport", (t) => landingTest(t, "jsonp"));
