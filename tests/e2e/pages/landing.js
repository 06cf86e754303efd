// A landing page A/B test as a site would write it: connect, `suggest` a
// headline, reward a sign-up. Everything the page did is kept in
// `window.visit` for the test to collect: which variant it showed, how many
// views and rewards it queued, and every `error` and `sync` event.
//
// URL parameters: apiRoot, apiKey, experiment (uuid), and optionally
// transport, batchSize, flushIntervalMs, timeoutMs, snapshot (a read form as JSON, passed
// as `experiments` so connect needs no network).
import { Myna, MynaError } from "myna-sdk";

const params = new URLSearchParams(location.search);
const number = (name) => (params.has(name) ? Number(params.get(name)) : undefined);

const describe = (e) => ({
  isMynaError: e instanceof MynaError,
  isError: e instanceof Error,
  name: e?.name,
  code: e?.code,
  status: e?.status,
  path: e?.path,
  message: e?.message,
});

const visit = (window.visit = {
  variant: null,
  headline: null,
  views: 0,
  rewards: 0,
  rewardCalls: [],
  errors: [],
  syncs: [],
  connectError: null,
  experimentError: null,
  loadError: null,
});

const $ = (id) => document.getElementById(id);

async function main() {
  const options = {
    apiRoot: params.get("apiRoot"),
    apiKey: params.get("apiKey"),
    transport: params.get("transport") ?? undefined,
    batchSize: number("batchSize"),
    flushIntervalMs: number("flushIntervalMs"),
    timeoutMs: number("timeoutMs"),
  };
  if (params.has("snapshot")) options.experiments = [JSON.parse(params.get("snapshot"))];
  let myna;
  try {
    myna = await Myna.connect(options);
  } catch (e) {
    visit.connectError = describe(e);
    $("status").textContent = `Could not load the experiment: ${e.message}`;
    return visit;
  }
  window.myna = myna;
  myna.on("error", (e) => visit.errors.push(describe(e)));
  myna.on("sync", (s) => visit.syncs.push({ ...s }));

  const uuid = params.get("experiment");
  let expt;
  try {
    expt = myna.experiment(uuid);
  } catch (e) {
    // Not among the published experiments connect loaded: ask for it alone.
    visit.experimentError = describe(e);
    try {
      expt = await myna.load(uuid);
    } catch (e) {
      visit.loadError = describe(e);
      $("status").textContent = `No such experiment: ${e.message}`;
      return visit;
    }
  }
  window.expt = expt;
  const before = myna.queued;
  const variant = expt.suggest();
  visit.views += myna.queued - before; // 1 for a fresh suggestion, 0 when sticky
  visit.variant = variant.id;
  visit.headline = variant.settings.headline ?? variant.name;
  $("headline").textContent = visit.headline;
  $("status").textContent = "Ready";
  $("signup").disabled = false;
  $("signup").addEventListener("click", () => {
    const queued = expt.reward();
    visit.rewardCalls.push(queued);
    if (queued) visit.rewards += 1;
  });
  return visit;
}

/** Resolves to `visit` once the page has decided (or failed to). */
window.ready = main();

/** Sends what is queued; resolves to `{ ok, sync | error, queued }`. */
window.flushNow = async () => {
  try {
    const sync = await window.myna.flush();
    return { ok: true, sync, queued: window.myna.queued };
  } catch (e) {
    return { ok: false, error: describe(e), queued: window.myna.queued };
  }
};
