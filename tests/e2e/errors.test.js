// Scenario 6: a bad API key and an archived experiment. The page's
// `myna.on("error", …)` handler gets a MynaError with a clear `code`
// (`authentication`, `unknown-experiment`), and the server counts nothing.

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { HEADLINES, landingUrl, load, until, visitOf, world, zeroCounts } from "./harness.js";

/** A well-formed API key that the server never issued. */
const BAD_KEY = "00000000-0000-4000-8000-000000000000";

let w;
before(async () => {
  w = await world();
});
after(() => w?.close());

/** Opens a page in a fresh context; resolves to `{ page, visit, close }`. */
async function open(url) {
  const context = await w.browser.newContext();
  const page = await context.newPage();
  const visit = await load(page, url);
  return { page, visit, close: () => context.close() };
}

/** Clicks "Sign up", flushes once; resolves to the flush result and the page's visit. */
async function rewardAndFlush(page) {
  await page.click("#signup");
  const flushed = await page.evaluate(() => window.flushNow());
  return { flushed, visit: await visitOf(page) };
}

const onlyCode = (errors, code) => errors.length > 0 && errors.every((e) => e.isMynaError && e.code === code);

test("6a. a bad API key: connect fails with `authentication`; a page on a snapshot gets an error event; nothing is counted", async (t) => {
  const experiment = await w.api.createExperiment("bad key", HEADLINES);
  const goodKey = await w.api.createApiKey("good");
  const notes = [];

  // Connecting (which loads the experiments) is refused.
  const a = await open(landingUrl(w.site, { apiRoot: w.server.url, apiKey: BAD_KEY, experiment: experiment.uuid }));
  try {
    const e = a.visit.connectError;
    assert.ok(e, "Myna.connect rejects");
    assert.equal(e.isMynaError, true);
    assert.equal(e.isError, true);
    assert.equal(e.code, "authentication");
    assert.equal(e.status, 401);
    assert.match(await a.page.textContent("#status"), /Could not load/);
    notes.push(`connect: MynaError ${e.code} ${e.status} "${e.message}"`);
  } finally {
    await a.close();
  }

  // A page that starts from a snapshot decides without the network; its events are refused.
  const snapshot = await w.api.readAsPage(experiment.uuid, goodKey);
  for (const transport of ["post", "jsonp"]) {
    const b = await open(
      landingUrl(w.site, { apiRoot: w.server.url, apiKey: BAD_KEY, experiment: experiment.uuid, transport, snapshot }),
    );
    try {
      assert.equal(b.visit.connectError, null);
      assert.equal(b.visit.views, 1);
      const { flushed, visit } = await rewardAndFlush(b.page);
      assert.equal(flushed.ok, true, "a refused batch settles the flush (it is not retried)");
      assert.ok(flushed.sync.dropped >= 1, "refused events are dropped");
      assert.equal(flushed.queued, 0);
      assert.ok(onlyCode(visit.errors, "authentication"), `error events: ${JSON.stringify(visit.errors)}`);
      assert.equal(visit.errors[0].status, 401);
      notes.push(`${transport} on a snapshot: error event ${visit.errors[0].code} ${visit.errors[0].status}, dropped ${flushed.sync.dropped}`);
    } finally {
      await b.close();
    }
  }
  assert.deepEqual(await w.api.counts(experiment.uuid), zeroCounts(Object.keys(HEADLINES)));
  t.diagnostic(notes.join("; ") + "; server counts stay zero");
});

test("6b. an archived experiment: open pages get `unknown-experiment` error events, new pages cannot load it; nothing is counted", async (t) => {
  const experiment = await w.api.createExperiment("archived", HEADLINES);
  const apiKey = await w.api.createApiKey("archived");
  const notes = [];
  // Pages open before the archiving; they send nothing on their own meanwhile.
  const pages = [];
  for (const transport of ["post", "jsonp"]) {
    const url = landingUrl(w.site, {
      apiRoot: w.server.url,
      apiKey,
      experiment: experiment.uuid,
      transport,
      flushIntervalMs: 3_600_000,
      batchSize: 100,
    });
    const p = await open(url);
    assert.equal(p.visit.views, 1);
    pages.push({ transport, ...p });
  }
  try {
    await w.api.update(experiment.uuid, { visibility: "archived" });
    for (const p of pages) {
      const { flushed, visit } = await rewardAndFlush(p.page);
      assert.equal(flushed.ok, true);
      assert.ok(flushed.sync.dropped >= 1);
      assert.ok(onlyCode(visit.errors, "unknown-experiment"), `error events: ${JSON.stringify(visit.errors)}`);
      assert.equal(visit.errors[0].status, 404);
      notes.push(`${p.transport}, page open before: error event ${visit.errors[0].code} ${visit.errors[0].status}, dropped ${flushed.sync.dropped}`);
    }
  } finally {
    await Promise.all(pages.map((p) => p.close()));
  }

  // A page loaded afterwards: connect works, the experiment is not there, loading it alone fails.
  const c = await open(landingUrl(w.site, { apiRoot: w.server.url, apiKey, experiment: experiment.uuid }));
  try {
    const visit = await until("the page to give up", async () => {
      const v = await visitOf(c.page);
      return v.loadError && v;
    });
    assert.equal(visit.connectError, null);
    assert.equal(visit.experimentError?.code, "unknown-experiment", "myna.experiment(uuid) throws");
    assert.equal(visit.loadError.code, "unknown-experiment", "myna.load(uuid) rejects");
    assert.equal(visit.loadError.status, 404);
    assert.ok(onlyCode(visit.errors, "unknown-experiment"), "…and the error handler hears of it");
    assert.equal(visit.variant, null);
    notes.push(`page loaded after: experiment() throws ${visit.experimentError.code}, load() emits ${visit.errors[0].code} ${visit.errors[0].status}`);
  } finally {
    await c.close();
  }
  const form = await w.api.read(experiment.uuid);
  assert.equal(form.visibility, "archived");
  assert.deepEqual(await w.api.counts(experiment.uuid), zeroCounts(Object.keys(HEADLINES)));
  t.diagnostic(notes.join("; ") + "; server counts stay zero");
});
