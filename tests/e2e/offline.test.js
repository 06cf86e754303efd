// Scenario 3: the server goes away while visitors act, then comes back.
// Visitors load the landing page (a view each), the server is killed
// (SIGKILL: a crash, so a batch may be committed without its answer ever
// arriving), the visitors click "Sign up" while it is down (their sends fail
// and the SDK keeps the events), half of them leave for another page, and the
// server is restarted on the same port and database. Those who stayed are
// sent by the SDK's own retries (no explicit flush); those who left come back
// later and their next page load sends what the earlier one kept. Every event
// must arrive exactly once.

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { HEADLINES, drain, landingUrl, load, pool, tally, until, visitOf, world, zeroCounts } from "./harness.js";

const VISITORS = 12;

let w;
before(async () => {
  w = await world();
});
after(() => w?.close());

test("3. offline: the server is stopped while visitors act, then restarted: every event arrives once", async (t) => {
  const experiment = await w.api.createExperiment("offline", HEADLINES);
  const apiKey = await w.api.createApiKey("offline");
  const url = landingUrl(w.site, { apiRoot: w.server.url, apiKey, experiment: experiment.uuid });

  // Everyone arrives while the server is up.
  const visitors = await pool(VISITORS, 4, async () => {
    const context = await w.browser.newContext();
    const page = await context.newPage();
    const visit = await load(page, url);
    assert.equal(visit.connectError, null);
    assert.equal(visit.views, 1);
    return { context, page, visits: [] };
  });
  try {
    // Some views may be on the wire at this moment: the crash may cut them off.
    await w.server.stop("SIGKILL");
    const ownStops = [];

    await pool(VISITORS, 4, async (i) => {
      const v = visitors[i];
      await v.page.click("#signup");
      const attempt = await v.page.evaluate(() => window.flushNow());
      assert.equal(attempt.ok, false, "a flush fails while the server is down");
      assert.equal(attempt.error.isMynaError, true);
      assert.ok(attempt.queued >= 1, "the events stay queued");
      ownStops.push(attempt.error.code);
      if (i % 2 === 1) {
        // Leaves while offline: the beacon fails too; the queue stays stored.
        v.visits.push(await visitOf(v.page));
        await v.page.click("#away");
        await v.page.waitForSelector("#elsewhere");
        v.left = true;
      }
    });

    await w.server.restart();

    await pool(VISITORS, 4, async (i) => {
      const v = visitors[i];
      if (v.left) {
        // Comes back later: this page load sends what the last one kept.
        const again = await load(v.page, url);
        assert.equal(again.views, 0, "a returning visitor keeps its variant");
        await drain(v.page);
      } else {
        // Stayed: the SDK retries on its own (backoff), nobody calls flush.
        await until(`visitor ${i}'s queue to be sent by the SDK's retries`, () =>
          v.page.evaluate(() => window.myna.queued === 0),
        );
      }
      v.visits.push(await visitOf(v.page));
    });

    const expected = zeroCounts(Object.keys(HEADLINES));
    for (const v of visitors) for (const visit of v.visits) tally(expected, visit);
    const views = Object.values(expected).reduce((n, c) => n + c.views, 0);
    const rewards = Object.values(expected).reduce((n, c) => n + c.totalReward, 0);
    assert.equal(views, VISITORS);
    assert.equal(rewards, VISITORS);
    const server = await w.api.countsReach(experiment.uuid, expected);
    assert.deepEqual(await w.api.counts(experiment.uuid), server);
    const codes = [...new Set(ownStops)].join(", ");
    t.diagnostic(
      `${VISITORS} visitors, server killed and restarted on ${w.server.address}; ` +
        `flush while down failed with MynaError code(s) ${codes}; ` +
        `server counts = pages' counts = ${JSON.stringify(server)}`,
    );
  } finally {
    await Promise.all(visitors.map((v) => v.context.close()));
  }
});
