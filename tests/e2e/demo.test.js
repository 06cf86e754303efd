// The demo a newcomer runs (examples/demo, README "Try the demo"): demo.mjs
// against a real server sets up the experiment, serves the page and prints
// the counts. A visitor signs up, the page simulates 200 visitors; the server
// counts what the page did, the weights favour the better headline, and the
// terminal shows the same counts. A second run finds the experiment again.

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { OWNER, launchBrowser, MynaServer, Api, until } from "./harness.js";

const demoScript = join(resolve(dirname(fileURLToPath(import.meta.url)), "../.."), "examples/demo/demo.mjs");

let server;
let api;
let browser;
const demos = [];
before(async () => {
  server = await MynaServer.start();
  api = new Api(server);
  browser = await launchBrowser();
});
after(async () => {
  for (const d of demos) d.child.kill();
  await browser?.close();
  await server?.dispose();
});

/** Runs demo.mjs as the README says; resolves once it printed the page's address. */
async function runDemo() {
  const child = spawn(process.execPath, [demoScript], {
    env: {
      ...process.env,
      MYNA_URL: server.url,
      MYNA_ADMIN_EMAIL: OWNER.email,
      MYNA_ADMIN_PASSWORD: OWNER.password,
      DEMO_PORT: "0",
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const demo = { child, out: [] };
  demos.push(demo);
  for (const stream of [child.stdout, child.stderr]) {
    createInterface({ input: stream }).on("line", (line) => demo.out.push(line));
  }
  const opened = await until("demo.mjs to print the page's address", () =>
    demo.out.map((l) => /^open (http:\S+)/.exec(l)).find(Boolean),
  );
  demo.url = opened[1];
  return demo;
}

test("the demo: set up by demo.mjs, a visitor and 200 simulated ones counted, weights move, the terminal shows it", async (t) => {
  const demo = await runDemo();
  assert.ok(demo.out.some((l) => l.startsWith("created the experiment")), demo.out.join("\n"));
  const config = await (await fetch(new URL("config.json", demo.url))).json();

  const context = await browser.newContext();
  try {
    const page = await context.newPage();
    await page.goto(demo.url);
    await page.waitForFunction(() => document.getElementById("variant").textContent !== "?");
    const mine = await page.textContent("#variant");
    await page.click("#signup");
    await page.waitForSelector("#thanks", { state: "visible" });
    await page.click("#simulate");
    await page.waitForFunction(() => /done|stopped/.test(document.getElementById("progress").textContent), null, {
      timeout: 300_000,
    });
    assert.match(await page.textContent("#progress"), /200 visitors, \d+ sign-ups — done/);
    const simulated = await page.evaluate(() => window.simulated);

    const expected = {};
    for (const id of ["control", "benefit"]) {
      const s = simulated[id] ?? { views: 0, signups: 0 };
      expected[id] = { views: s.views + (id === mine ? 1 : 0), totalReward: s.signups + (id === mine ? 1 : 0) };
    }
    const counts = await api.countsReach(config.experiment, expected);
    const form = await api.read(config.experiment);
    const weights = Object.fromEntries(Object.entries(form.variants).map(([id, v]) => [id, v.weight]));
    assert.ok(weights.benefit > weights.control, `the better headline is favoured: ${JSON.stringify(weights)}`);

    // The terminal prints the same counts.
    const wanted = Object.entries(counts).map(([id, c]) => `${id}: ${c.views} views, ${c.totalReward} sign-ups`);
    const line = await until("demo.mjs to print the counts", () =>
      demo.out.find((l) => wanted.every((w) => l.includes(w))),
    );
    // The page shows the weights the server serves.
    await page.waitForFunction(() => document.querySelectorAll("#weights tr").length === 2);
    t.diagnostic(`page: variant ${mine}, signed up; simulated ${JSON.stringify(simulated)}`);
    t.diagnostic(`terminal: ${line}`);
  } finally {
    await context.close();
  }

  // Run again (as a newcomer would after a restart): the same experiment and key.
  const again = await runDemo();
  assert.ok(again.out.some((l) => l.startsWith(`using the experiment`) && l.includes(config.experiment)), again.out.join("\n"));
  assert.equal((await (await fetch(new URL("config.json", again.url))).json()).apiKey, config.apiKey);
});
