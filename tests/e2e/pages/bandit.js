// Many simulated visitors from one page: each is a new SDK client (as a page
// load would make) on an emptied localStorage, so it has no sticky variant
// and no queue. It connects (loading the weights the server serves now),
// `suggest`s a variant, converts with that variant's rate (a seeded
// generator), and flushes before the next visitor comes. What each did is
// tallied for the test to compare with the server's counts.
import { Myna } from "myna-sdk";

/** mulberry32: the same seed, the same conversions. */
function seeded(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Progress of the running simulation (visitors done), for the test to watch. */
window.done = 0;

/**
 * Runs `visitors` simulated visitors; resolves to
 * `{ counts: { variant: { views, totalReward } }, errors }`.
 */
window.simulate = async ({ apiRoot, apiKey, experiment, visitors, seed, rates }) => {
  const rng = seeded(seed);
  const counts = {};
  const errors = [];
  for (let i = 0; i < visitors; i++) {
    localStorage.clear(); // a new visitor
    const myna = await Myna.connect({ apiRoot, apiKey, flushIntervalMs: 3_600_000, batchSize: 100 });
    myna.on("error", (e) => errors.push({ code: e.code, message: e.message }));
    const expt = myna.experiment(experiment);
    const before = myna.queued;
    const variant = expt.suggest();
    const c = (counts[variant.id] ??= { views: 0, totalReward: 0 });
    c.views += myna.queued - before;
    if (rng() < rates[variant.id] && expt.reward()) c.totalReward += 1;
    // Sent before the next visitor; a failed attempt is retried.
    for (let attempt = 0; ; attempt++) {
      try {
        await myna.flush();
        if (myna.queued === 0) break;
      } catch (e) {
        if (attempt >= 20) throw e;
        await new Promise((r) => setTimeout(r, 200 * (attempt + 1)));
      }
    }
    myna.close();
    myna.free();
    window.done += 1;
  }
  return { counts, errors };
};
