// The SDK under faults: a fault proxy of the suite's own (faults.js) sits
// between the landing page and the real server and answers in the server's
// place as CDNs, captive portals, throttling proxies and broken connections
// do; some scenarios also break the page itself (its clock, its storage, its
// Web Locks) or open ten tabs of one visitor. Each checks, as the owner, that
// the server counted exactly what the page meant to record once the fault
// cleared (or that the right MynaError was raised), and that no exception
// reached the page.

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { HEADLINES, drain, landingUrl, load, reload, tally, until, visitOf, world, zeroCounts } from "./harness.js";
import { answers, faultProxy, inTurn } from "./faults.js";

let w;
let proxy;
before(async () => {
  w = await world();
  proxy = await faultProxy(w.server.url);
});
after(async () => {
  await proxy?.close();
  await w?.close();
});

const DAY_MS = 86_400_000;
/** No flush but the ones a test asks for (no timer, no batch-size flush). */
const MANUAL = { flushIntervalMs: 3_600_000, batchSize: 100 };

/** A new experiment with the two headlines and an API key for it. */
async function setup(name) {
  const experiment = await w.api.createExperiment(name, HEADLINES);
  const apiKey = await w.api.createApiKey(name);
  return { uuid: experiment.uuid, apiKey };
}

/** The landing page's URL through the proxy (or `root`). */
function urlOf(e, params = {}, root = proxy.url) {
  return landingUrl(w.site, { apiRoot: root, apiKey: e.apiKey, experiment: e.uuid, ...params });
}

/** A page in `context` whose uncaught exceptions are collected in `page.errors`. */
async function watchedPage(context) {
  const page = await context.newPage();
  page.errors = [];
  page.on("pageerror", (e) => page.errors.push(String(e)));
  return page;
}

/** A fresh context (one visitor) with an init script, and one watched page. */
async function visitor(init) {
  const context = await w.browser.newContext();
  if (init) await context.addInitScript(init);
  const page = await watchedPage(context);
  return { context, page };
}

const totals = (counts) =>
  Object.values(counts).reduce((t, c) => ({ views: t.views + c.views, rewards: t.rewards + c.totalReward }), { views: 0, rewards: 0 });

/** Only record requests of experiment `uuid`. */
const recordOf = (uuid) => (e) => e.kind === "record" && e.path.includes(uuid);

test("1. a 200 that is not Myna's answer (an HTML page, an empty body) is retried, not taken as delivered", async (t) => {
  const e = await setup("foreign 200");
  proxy.rule = inTurn(recordOf(e.uuid), [answers.html(), answers.empty()]);
  const { context, page } = await visitor();
  try {
    const visit = await load(page, urlOf(e, MANUAL));
    await page.click("#signup");
    const seen = [];
    for (const what of ["an HTML page", "an empty body"]) {
      const r = await page.evaluate(() => window.flushNow());
      assert.equal(r.ok, false, `a 200 with ${what} fails the flush`);
      assert.equal(r.error.isMynaError, true);
      assert.equal(r.queued, 2, "the events stay queued");
      seen.push(`${what}: ${r.error.code}`);
    }
    await drain(page);
    const expected = tally(zeroCounts(Object.keys(HEADLINES)), await visitOf(page));
    assert.deepEqual(totals(expected), { views: 1, rewards: 1 });
    await w.api.countsReach(e.uuid, expected);
    assert.deepEqual((await visitOf(page)).errors, []);
    assert.deepEqual(page.errors, []);
    t.diagnostic(`flushes failed with ${seen.join(", ")}; then counted ${JSON.stringify(expected[visit.variant])}`);
  } finally {
    await context.close();
  }
});

test("2. 408 Request Timeout is retried like 429 and 5xx", async (t) => {
  const e = await setup("408");
  // Two: Chromium itself resends a request once when a reused connection
  // answers 408; the page sees the second.
  proxy.rule = inTurn(recordOf(e.uuid), [answers.status(408), answers.status(408)]);
  const { context, page } = await visitor();
  try {
    await load(page, urlOf(e, MANUAL));
    await page.click("#signup");
    const r = await page.evaluate(() => window.flushNow());
    assert.equal(r.ok, false, "a 408 fails the flush");
    assert.equal(r.queued, 2, "and keeps the events to retry");
    await drain(page);
    const expected = tally(zeroCounts(Object.keys(HEADLINES)), await visitOf(page));
    assert.deepEqual(totals(expected), { views: 1, rewards: 1 });
    await w.api.countsReach(e.uuid, expected);
    assert.deepEqual((await visitOf(page)).errors, []);
    assert.deepEqual(page.errors, []);
    t.diagnostic(`408 → MynaError ${r.error.code} (status ${r.error.status}), kept, then counted`);
  } finally {
    await context.close();
  }
});

test("3. a page clock two days fast loses nothing (POST, JSONP, beacon)", async (t) => {
  const e = await setup("fast clock");
  const fast = `{ const real = Date.now.bind(Date); Date.now = () => real() + ${2 * DAY_MS}; }`;
  const expected = zeroCounts(Object.keys(HEADLINES));
  const notes = [];
  for (const transport of ["post", "jsonp", "beacon"]) {
    const { context, page } = await visitor(fast);
    try {
      const params = { ...MANUAL, transport: transport === "jsonp" ? "jsonp" : "post" };
      await load(page, urlOf(e, params, w.server.url));
      assert.ok((await page.evaluate(() => Date.now())) > Date.now() + DAY_MS, "the page's clock is fast");
      await page.click("#signup");
      const visit = await visitOf(page);
      tally(expected, visit);
      if (transport === "beacon") {
        // Leaves at once: only the beacon sends.
        await page.click("#away");
        await page.waitForSelector("#elsewhere");
      } else {
        await drain(page);
        assert.deepEqual((await visitOf(page)).errors, []);
      }
      assert.deepEqual(page.errors, []);
      await w.api.countsReach(e.uuid, expected);
      notes.push(`${transport}: counted`);
    } finally {
      await context.close();
    }
  }
  assert.deepEqual(totals(expected), { views: 3, rewards: 3 });
  t.diagnostic(`${notes.join(", ")}: ${JSON.stringify(await w.api.counts(e.uuid))}`);
});

test("4. Retry-After (seconds, or an HTTP date) holds back every attempt until then", async (t) => {
  const WAIT_S = 20;
  const forms = {
    seconds: () => ({ at: null, answer: answers.status(503, { "retry-after": String(WAIT_S) }) }),
    date: () => {
      // A whole second (an HTTP date has no more), at least WAIT_S ahead.
      const at = Math.ceil((Date.now() + WAIT_S * 1000) / 1000) * 1000;
      return { at, answer: answers.status(429, { "retry-after": new Date(at).toUTCString() }) };
    },
  };
  const runs = await Promise.all(
    Object.entries(forms).map(async ([form, make]) => {
      const e = await setup(`retry-after ${form}`);
      const run = { form, e, until: null };
      return run;
    }),
  );
  const byUuid = new Map(runs.map((r) => [r.e.uuid, r]));
  proxy.rule = (entry) => {
    if (entry.kind !== "record") return "pass";
    const run = [...byUuid.values()].find((r) => entry.path.includes(r.e.uuid));
    if (!run || run.faulted) return "pass";
    run.faulted = entry;
    const { at, answer } = forms[run.form]();
    run.until = at ?? entry.at + WAIT_S * 1000;
    return answer;
  };
  const notes = [];
  await Promise.all(
    runs.map(async (run) => {
      // The page's own timer sends (every second); nobody calls flush.
      const { context, page } = await visitor();
      try {
        await load(page, urlOf(run.e));
        await page.click("#signup");
        const expected = tally(zeroCounts(Object.keys(HEADLINES)), await visitOf(page));
        await w.api.countsReach(run.e.uuid, expected);
        const attempts = proxy.seen("record", run.e.uuid);
        assert.ok(attempts.length >= 2 && attempts[0] === run.faulted, "the first attempt was answered by the fault");
        const next = attempts[1];
        assert.ok(
          next.at >= run.until,
          `${run.form}: the next attempt came ${next.at - run.faulted.at} ms after the first, before the Retry-After (${run.until - run.faulted.at} ms)`,
        );
        assert.deepEqual(page.errors, []);
        notes.push(`${run.form}: next attempt ${next.at - run.faulted.at} ms after (Retry-After ${run.until - run.faulted.at} ms)`);
      } finally {
        await context.close();
      }
    }),
  );
  t.diagnostic(notes.join("; "));
});

test("5. a broken JSONP answer throws nothing into the page, and the events arrive once it clears", async (t) => {
  const e = await setup("broken jsonp");
  proxy.rule = inTurn(recordOf(e.uuid), [answers.truncatedJsonp]);
  const { context, page } = await visitor();
  try {
    await load(page, urlOf(e, { ...MANUAL, transport: "jsonp", timeoutMs: 5000 }));
    await page.click("#signup");
    const r = await page.evaluate(() => window.flushNow());
    assert.equal(r.ok, false, "the broken answer fails the flush");
    assert.equal(r.queued, 2);
    await drain(page);
    const expected = tally(zeroCounts(Object.keys(HEADLINES)), await visitOf(page));
    await w.api.countsReach(e.uuid, expected);
    assert.deepEqual(page.errors, [], "no exception reached the page");
    t.diagnostic(`truncated JSONP → MynaError ${r.error.code}, no page exception; then counted ${JSON.stringify(totals(expected))}`);
  } finally {
    await context.close();
  }
});

test("6. localStorage whose methods throw: the page still gets a variant and records, from memory", async (t) => {
  const e = await setup("blocked storage");
  const blocked = `for (const m of ["getItem", "setItem", "removeItem", "key", "clear"]) {
    Storage.prototype[m] = function () { throw new DOMException("The operation is insecure.", "SecurityError"); };
  }`;
  const { context, page } = await visitor(blocked);
  try {
    const visit = await load(page, urlOf(e, MANUAL, w.server.url));
    assert.equal(visit.connectError, null);
    assert.ok(visit.variant, "suggest gave a variant");
    assert.equal(visit.views, 1);
    await page.click("#signup");
    assert.deepEqual((await visitOf(page)).rewardCalls, [true]);
    await drain(page);
    const expected = tally(zeroCounts(Object.keys(HEADLINES)), await visitOf(page));
    await w.api.countsReach(e.uuid, expected);
    assert.deepEqual(page.errors, []);
    t.diagnostic(`storage throwing SecurityError: variant ${visit.variant}, counted ${JSON.stringify(totals(expected))}`);
  } finally {
    await context.close();
  }
});

test("7. localStorage full before connect: a reload keeps the variant and counts no second view", async (t) => {
  const e = await setup("full storage");
  const fill = `try {
    if (localStorage.getItem("filler-0") === null) {
      let i = 0, size = 1 << 21;
      while (size >= 1) { try { localStorage.setItem("filler-" + i, "x".repeat(size)); i++; } catch { size >>= 1; } }
    }
  } catch {}`;
  const { context, page } = await visitor(fill);
  try {
    const first = await load(page, urlOf(e, MANUAL, w.server.url));
    assert.equal(first.views, 1);
    await drain(page);
    const again = await reload(page);
    assert.equal(again.variant, first.variant, "the visitor keeps the variant");
    assert.equal(again.views, 0, "and is not counted again");
    await page.click("#signup");
    await drain(page);
    const expected = zeroCounts(Object.keys(HEADLINES));
    tally(expected, first);
    tally(expected, await visitOf(page));
    assert.deepEqual(totals(expected), { views: 1, rewards: 1 });
    await w.api.countsReach(e.uuid, expected);
    assert.deepEqual(page.errors, []);
    t.diagnostic(`storage full: variant ${first.variant} kept across a reload; counted ${JSON.stringify(expected[first.variant])}`);
  } finally {
    await context.close();
  }
});

/**
 * Ten tabs of one visitor (one context), opened in turn or at once (their
 * connects held by the proxy, then answered together, so they all draw at
 * the same moment), all clicking "Sign up" at the same instant (a timer in
 * each page), then all closed at once; a last page of the visitor sends
 * whatever the tabs left. Resolves to what the tabs showed and the server's
 * counts.
 */
async function tenTabs(e, atOnce) {
  const TABS = 10;
  const context = await w.browser.newContext();
  try {
    const pages = [];
    for (let i = 0; i < TABS; i++) pages.push(await watchedPage(context));
    const url = urlOf(e, { timeoutMs: 60_000 });
    const ours = (entry) => entry.auth?.includes(e.apiKey);
    if (atOnce) {
      // Chromium sends at most 6 requests at once to one host: 6 are held.
      const HELD = 6;
      proxy.rule = (entry) => (entry.kind === "search" && ours(entry) && proxy.held < HELD ? "hang" : "pass");
      const loads = pages.map((p) => load(p, url));
      await until("six tabs' connects to be held", () => proxy.held >= HELD);
      proxy.rule = () => "pass";
      proxy.passHung();
      await Promise.all(loads);
    } else {
      for (const p of pages) await load(p, url);
    }
    const at = Date.now() + 500;
    await Promise.all(
      pages.map((p) =>
        p.evaluate((at) => new Promise((done) => setTimeout(() => done(document.querySelector("#signup").click()), at - Date.now())), at),
      ),
    );
    const visits = await Promise.all(pages.map(visitOf));
    for (const v of visits) assert.ok(v.variant, `every tab shows a variant: ${JSON.stringify(v.connectError)}`);
    const errors = pages.flatMap((p) => p.errors);
    await Promise.all(pages.map((p) => p.close({ runBeforeUnload: true })));
    const last = await watchedPage(context);
    const lastVisit = await load(last, url);
    await drain(last);
    assert.equal(lastVisit.views, 0, `${atOnce ? "at once" : "in turn"}: the visitor's variant is kept`);
    assert.deepEqual([...errors, ...last.errors], []);
    return { visits, counts: await w.api.counts(e.uuid) };
  } finally {
    proxy.rule = () => "pass";
    await context.close();
  }
}

test("8. ten tabs of one visitor, opened in turn or at once: one view and one reward", async (t) => {
  const notes = [];
  const runs = [];
  for (const atOnce of [false, true]) {
    const e = await setup(atOnce ? "ten tabs at once" : "ten tabs in turn");
    const { visits, counts } = await tenTabs(e, atOnce);
    const shown = new Set(visits.map((v) => v.variant));
    const mode = atOnce ? "opened at once" : "opened in turn";
    notes.push(
      `${mode}: pages showed ${[...shown].join("+")}, ${visits.reduce((n, v) => n + v.views, 0)} fresh suggestions, ` +
        `${visits.reduce((n, v) => n + v.rewards, 0)} rewards queued; server ${JSON.stringify(counts)}`,
    );
    runs.push({ mode, counts });
  }
  t.diagnostic(notes.join("; "));
  for (const { mode, counts } of runs) {
    assert.deepEqual(totals(counts), { views: 1, rewards: 1 }, `${mode}: ${JSON.stringify(counts)}`);
    const viewed = Object.values(counts).find((c) => c.views > 0);
    assert.equal(viewed.totalReward, 1, "the reward goes to the variant viewed");
  }
});

test("9. without Web Locks, a tab closed mid-flush does not hold up the next page's delivery", async (t) => {
  const e = await setup("no web locks");
  const noLocks = `Object.defineProperty(Navigator.prototype, "locks", { get: () => undefined, configurable: true });`;
  const context = await w.browser.newContext();
  await context.addInitScript(noLocks);
  try {
    // The flush's fetch is held; the beacon at close is refused (a beacon's
    // answer is never seen, and the browser would resend a dropped one).
    proxy.rule = (entry) => (!recordOf(e.uuid)(entry) ? "pass" : entry.mode === "cors" ? "hang" : answers.status(503));
    const a = await watchedPage(context);
    const url = urlOf(e, MANUAL);
    await load(a, url);
    assert.equal(await a.evaluate(() => navigator.locks), undefined);
    await a.click("#signup");
    a.evaluate(() => window.flushNow()).catch(() => {});
    await until("the flush to be on the wire", () => proxy.seen("record", e.uuid).length >= 1);
    const expected = tally(zeroCounts(Object.keys(HEADLINES)), await visitOf(a));
    const lease = await a.evaluate(() => localStorage.getItem("myna:lease"));
    assert.ok(lease, "the flushing tab holds the lease");
    // Closed mid-flush: its beacons are refused too (all of them: a page
    // going away may beacon at pagehide and at visibilitychange); then the
    // held flush is answered 503 (it fails, and is not resent), and sends
    // by fetch pass again: only the next page can deliver.
    await a.close({ runBeforeUnload: true });
    const closedAt = Date.now();
    await until("the closed tab's beacon", () => proxy.seen("record", e.uuid).some((x) => x.mode !== "cors"));
    proxy.rule = (entry) => (recordOf(e.uuid)(entry) && entry.mode !== "cors" ? answers.status(503) : "pass");
    proxy.answerHung(answers.status(503));
    const b = await watchedPage(context);
    const visit = await load(b, url);
    assert.equal(visit.views, 0);
    // Generous next to the ~1 s this takes, well under the 60 s the lease lasted.
    await w.api.countsReach(e.uuid, expected, 30_000);
    const tookMs = Date.now() - closedAt;
    assert.deepEqual(b.errors, []);
    const seen = proxy.seen("record", e.uuid).map((x) => `${x.mode}:${x.action}@${x.at - closedAt}`);
    t.diagnostic(`lease at close: "${lease}"; the next page delivered the closed tab's events ${tookMs} ms after it closed (record requests: ${seen.join(" ")})`);
  } finally {
    proxy.rule = () => "pass";
    await context.close();
  }
});

test("10. connect against a search answer that is not Myna's rejects with a MynaError", async (t) => {
  const e = await setup("foreign search");
  const notes = [];
  const cases = [
    ["post", "a 200 HTML page", answers.html],
    ["post", "truncated JSON", answers.truncatedJson],
    ["jsonp", "truncated JSONP", answers.truncatedJsonp],
  ];
  for (const [transport, what, answer] of cases) {
    proxy.rule = inTurn((entry) => entry.kind === "search", [answer]);
    const { context, page } = await visitor();
    try {
      const visit = await load(page, urlOf(e, { transport, timeoutMs: 5000 }));
      assert.ok(visit.connectError, `${what}: Myna.connect rejects`);
      assert.equal(visit.connectError.isMynaError, true);
      assert.deepEqual(page.errors, []);
      notes.push(`${transport}, ${what}: MynaError ${visit.connectError.code}`);
    } finally {
      await context.close();
    }
  }
  proxy.rule = () => "pass";
  t.diagnostic(notes.join("; "));
});

test("11. a burst over the queue's bound is reported in a bounded number of events", async (t) => {
  const e = await setup("burst");
  const { context, page } = await visitor();
  try {
    const visit = await load(page, urlOf(e, MANUAL, w.server.url));
    const BURST = 20_000;
    const r = await page.evaluate(async (burst) => {
      const id = window.visit.variant;
      const under = 1000 - window.myna.queued;
      const t0 = performance.now();
      for (let i = 0; i < under; i++) window.expt.view(id);
      const t1 = performance.now();
      for (let i = under; i < burst; i++) window.expt.view(id);
      const t2 = performance.now();
      await new Promise((r) => setTimeout(r, 0));
      return {
        underUs: ((t1 - t0) * 1000) / under,
        overUs: ((t2 - t1) * 1000) / (burst - under),
        queued: window.myna.queued,
        errors: window.visit.errors,
        syncs: window.visit.syncs,
      };
    }, BURST);
    const dropped = r.syncs.reduce((n, s) => n + s.dropped, 0);
    t.diagnostic(
      `${BURST} views: ${r.errors.length} error and ${r.syncs.length} sync events (dropped ${dropped}); ` +
        `${r.underUs.toFixed(1)} µs per event under the bound, ${r.overUs.toFixed(1)} µs at it`,
    );
    // Once over its bound, the queue drops down to nine tenths of it.
    assert.ok(r.queued >= 900 && r.queued <= 1000, `the queue holds within its bound: ${r.queued}`);
    assert.ok(r.errors.length >= 1 && r.errors.length <= 2, `${r.errors.length} error events for one burst`);
    assert.ok(r.syncs.length <= 2, `${r.syncs.length} sync events for one burst`);
    assert.ok(r.errors.every((x) => x.code === "queue-full"));
    assert.equal(dropped, BURST + visit.views - r.queued, "the sync events count every dropped event");
    assert.deepEqual(page.errors, []);
  } finally {
    await context.close();
  }
});
