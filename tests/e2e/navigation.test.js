// Scenarios 4 and 5: a visitor who rewards and leaves at once (the events
// travel by beacon at pagehide and stay queued until a later confirmed send,
// so the next page load sends them again under the same batch id: counted
// once), and a visitor with two tabs open (one view, one reward, nothing
// twice, whichever tab sends).

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { HEADLINES, drain, landingUrl, load, pool, tally, until, visitOf, world, zeroCounts } from "./harness.js";

let w;
before(async () => {
  w = await world();
});
after(() => w?.close());

/**
 * The SDK's queues kept in this page's localStorage, one per tab: their
 * bases (`myna:t:<tab>`; the records of events queued since, under
 * `myna:t:<tab>:<n>`, belong to it), or the whole queues SDK versions before
 * records kept (`myna:q:<tab>`). See wasm-sdk/src/storage.rs.
 */
const storedQueues = (page) =>
  page.evaluate(() =>
    Object.keys(localStorage)
      .filter((k) => /^myna:[tq]:[^:]+$/.test(k))
      .map((k) => localStorage.getItem(k)),
  );

test("4. navigation: a reward sent at once by beacon, and not counted twice by a later page load", async (t) => {
  const VISITORS = 10;
  const experiment = await w.api.createExperiment("navigation", HEADLINES);
  const apiKey = await w.api.createApiKey("navigation");
  // No timer flush and no batch-size flush: only the beacon can send before the page goes.
  const url = landingUrl(w.site, {
    apiRoot: w.server.url,
    apiKey,
    experiment: experiment.uuid,
    flushIntervalMs: 3_600_000,
    batchSize: 100,
  });

  const visitors = await pool(VISITORS, VISITORS, async () => {
    const context = await w.browser.newContext();
    const page = await context.newPage();
    const visit = await load(page, url);
    await page.click("#signup");
    const before = await visitOf(page);
    assert.equal(before.rewards, 1);
    // Rewards, then navigates away at once.
    await page.click("#away");
    await page.waitForSelector("#elsewhere");
    return { context, page, visits: [before], variant: visit.variant };
  });
  try {
    const expected = zeroCounts(Object.keys(HEADLINES));
    for (const v of visitors) tally(expected, v.visits[0]);

    // No page with the SDK is open now: only the beacons can have delivered.
    await w.api.countsReach(experiment.uuid, expected);
    for (const v of visitors) {
      const queues = await storedQueues(v.page);
      assert.equal(queues.length, 1, "the beaconed batch stays queued until a confirmed send");
    }

    // Later page loads send the kept batch again (same id): the server must not count it twice.
    let resent = 0;
    await pool(VISITORS, VISITORS, async (i) => {
      const v = visitors[i];
      const again = await load(v.page, url);
      assert.equal(again.variant, v.variant);
      assert.equal(again.views, 0);
      await until("the kept batch to be confirmed", async () => (await storedQueues(v.page)).length === 0 && (await drain(v.page)));
      const visit = await visitOf(v.page);
      resent += visit.syncs.reduce((n, s) => n + s.sent, 0);
      assert.deepEqual(visit.errors, []);
      v.visits.push(visit);
    });
    assert.equal(resent, 2 * VISITORS, "every kept view and reward was sent again and confirmed");
    for (const v of visitors) tally(expected, v.visits[1]); // adds nothing: no new view or reward
    const server = await w.api.countsReach(experiment.uuid, expected);
    assert.deepEqual(await w.api.counts(experiment.uuid), server);
    t.diagnostic(
      `${VISITORS} visitors rewarded and left: counted from the beacons alone; their next page loads ` +
        `re-sent ${resent} kept events (same batch ids), acknowledged, not counted again: ${JSON.stringify(server)}`,
    );
  } finally {
    await Promise.all(visitors.map((v) => v.context.close()));
  }
});

test("5. two tabs of one visitor: one view, one reward, no duplicates", async (t) => {
  const VISITORS = 8;
  const experiment = await w.api.createExperiment("two tabs", HEADLINES);
  const apiKey = await w.api.createApiKey("two tabs");
  const url = landingUrl(w.site, { apiRoot: w.server.url, apiKey, experiment: experiment.uuid });
  const rewarded = (page) =>
    page.evaluate(() =>
      Object.keys(localStorage).some((k) => k.startsWith("myna:s:") && localStorage.getItem(k).includes('"r":true')),
    );

  const expected = zeroCounts(Object.keys(HEADLINES));
  await pool(VISITORS, 4, async (i) => {
    const context = await w.browser.newContext(); // one visitor: one localStorage
    try {
      const a = await context.newPage();
      const first = await load(a, url);
      const b = await context.newPage(); // a second tab of the same visitor
      const second = await load(b, url);
      assert.equal(second.variant, first.variant, "both tabs show the visitor's variant");
      assert.equal(first.views + second.views, 1, "one view between the two tabs");
      await b.click("#signup");
      // Tab A sees tab B's reward through the shared localStorage, then its own click adds nothing.
      await until("tab A to see the reward", () => rewarded(a));
      await a.click("#signup");
      const tabB = await visitOf(b);
      assert.deepEqual(tabB.rewardCalls, [true]);
      // Tab B goes elsewhere with whatever it had queued; tab A sends (adopting B's queue).
      await b.click("#away");
      await b.waitForSelector("#elsewhere");
      await drain(a);
      const tabA = await visitOf(a);
      assert.deepEqual(tabA.rewardCalls, [false]);
      assert.deepEqual([...tabA.errors, ...tabB.errors], []);
      tally(expected, tabA);
      tally(expected, tabB);
      assert.deepEqual(await storedQueues(a), [], `visitor ${i}: nothing left queued`);
    } finally {
      await context.close();
    }
  });
  const views = Object.values(expected).reduce((n, c) => n + c.views, 0);
  const rewards = Object.values(expected).reduce((n, c) => n + c.totalReward, 0);
  assert.equal(views, VISITORS);
  assert.equal(rewards, VISITORS);
  const server = await w.api.countsReach(experiment.uuid, expected);
  assert.deepEqual(await w.api.counts(experiment.uuid), server);
  t.diagnostic(`${VISITORS} visitors with two tabs each: ${JSON.stringify(server)}`);
});
