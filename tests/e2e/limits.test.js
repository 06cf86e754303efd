// The SDK against a server started with --record-limit (MYNA_RECORD_LIMIT):
// a page that queues more events than its address may record at once loses
// none of them. The server refuses the batches past the limit with 429
// `rate-limited` and a Retry-After; the SDK keeps the events and sends them
// after the wait (a wait, not an `error`), and the owner's counts end
// exactly equal to what the page recorded.

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { HEADLINES, landingUrl, load, until, world } from "./harness.js";

/** Events a minute one address may record: 10 a second after the burst. */
const LIMIT = 600;

let w;
before(async () => {
  w = await world({ serverEnv: { MYNA_RECORD_LIMIT: String(LIMIT), MYNA_ACCESS_LOG: "true" } });
});
after(async () => {
  await w?.close();
});

test("events past the record limit are sent after the server's wait, none lost and none twice", async () => {
  const experiment = await w.api.createExperiment("record limit", HEADLINES);
  const apiKey = await w.api.createApiKey("record limit");
  const context = await w.browser.newContext();
  try {
    const page = await context.newPage();
    const errors = [];
    page.on("pageerror", (e) => errors.push(String(e)));
    const url = landingUrl(w.site, { apiRoot: w.server.url, apiKey, experiment: experiment.uuid });
    const visit = await load(page, url);
    assert.equal(visit.connectError, null);
    // The page shows its variant 660 more times at once: with the
    // suggestion's view, 61 events beyond a minute's allowance.
    const extra = 660;
    await page.evaluate((n) => {
      for (let i = 0; i < n; i++) window.expt.view(window.visit.variant);
    }, extra);
    const views = visit.views + extra;
    // No flush from the test: the SDK's own timer sends the rest, each
    // retry after the server's Retry-After.
    const expected = Object.fromEntries(Object.keys(HEADLINES).map((id) => [id, { views: 0, totalReward: 0 }]));
    expected[visit.variant].views = views;
    await w.api.countsReach(experiment.uuid, expected, 60_000);
    await until("the page's queue to empty", () => page.evaluate(() => window.myna.queued === 0));
    // The limit did hold the page back (the access log's answers), and the
    // SDK took it as a wait, not as an error.
    const refused = w.server.log.filter((l) => l.includes("/record}") && l.includes("status=429"));
    assert.ok(refused.length > 0, "the server refused some batches with 429");
    assert.deepEqual(await page.evaluate(() => window.visit.errors), []);
    assert.deepEqual(errors, []);
  } finally {
    await context.close();
  }
});
