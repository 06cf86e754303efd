// The demo page: a real A/B test of two headlines with the Myna SDK.
// `/config.json` (written by demo.mjs) says where the server is, which API key
// to use and which experiment to run.
import { Myna } from "myna-sdk";

const $ = (id) => document.getElementById(id);
const config = await (await fetch("/config.json")).json();
const { apiRoot, apiKey, experiment: uuid } = config;

// 1. Connect: loads the published experiments (and their weights).
let myna;
try {
  myna = await Myna.connect({ apiRoot, apiKey });
} catch (e) {
  $("status").innerHTML = `<span class="error">Cannot reach the Myna server at ${apiRoot}: ${e.code}: ${e.message}</span>`;
  throw e;
}
window.myna = myna;
myna.on("error", (e) => {
  $("status").innerHTML = `<span class="error">${e.code}: ${e.message}</span>`;
});
myna.on("sync", ({ sent }) => {
  if (sent) $("status").textContent = `The server confirmed ${sent} event(s).`;
});

// 2. Suggest: the visitor's headline (drawn by weight, then sticky); a view is recorded.
const expt = myna.experiment(uuid);
const variant = expt.suggest();
$("headline").textContent = variant.settings.headline;
$("variant").textContent = variant.id;
$("status").textContent = "Connected. Your view is on its way to the server.";

// 3. Reward: a sign-up counts for the headline this visitor saw (once per view).
$("signup").disabled = false;
$("signup").addEventListener("click", () => {
  expt.reward();
  $("signup").disabled = true;
  $("thanks").hidden = false;
});

$("new-visitor").addEventListener("click", () => {
  expt.unstick(); // forget this visitor's headline: the next load draws again
  location.reload();
});

// The weights the server serves now: what any page with the API key may read.
async function showWeights() {
  const res = await fetch(`${apiRoot}/v2/experiment/${uuid}`, { headers: { authorization: `ApiKey ${apiKey}` } });
  if (!res.ok) return;
  const form = await res.json();
  $("weights").innerHTML = Object.entries(form.variants)
    .map(
      ([id, v]) =>
        `<tr><td>${id}</td><td>${v.weight.toFixed(3)}</td>` +
        `<td style="width:50%"><div class="bar" style="width:${(v.weight * 100).toFixed(1)}%"></div></td></tr>`,
    )
    .join("");
}
showWeights();
setInterval(showWeights, 2000);

// Simulated visitors: each a new SDK client with its own (emptied) storage, so
// it is drawn a headline by the current weights, like a new visitor.
const RATES = { control: 0.1, benefit: 0.3 };
/** What the simulated visitors did, by variant (`{ views, signups }`). */
const simulated = (window.simulated = {});
$("simulate").addEventListener("click", async () => {
  $("simulate").disabled = true;
  const NS = "myna-demo-sim";
  const clear = () => Object.keys(localStorage).filter((k) => k.startsWith(NS + ":")).forEach((k) => localStorage.removeItem(k));
  let signups = 0;
  try {
    for (let i = 1; i <= 200; i++) {
      clear();
      const visitor = await Myna.connect({ apiRoot, apiKey, storageKey: NS });
      const e = visitor.experiment(uuid);
      const shown = e.suggest();
      const tally = (simulated[shown.id] ??= { views: 0, signups: 0 });
      tally.views++;
      if (Math.random() < (RATES[shown.id] ?? 0.2) && e.reward()) {
        tally.signups++;
        signups++;
      }
      await visitor.flush();
      visitor.close();
      visitor.free();
      $("progress").textContent = `${i} visitors, ${signups} sign-ups`;
    }
    $("progress").textContent += " — done";
  } catch (e) {
    $("progress").innerHTML = `<span class="error">stopped: ${e.code}: ${e.message}</span>`;
  }
  clear();
  $("simulate").disabled = false;
  showWeights();
});
