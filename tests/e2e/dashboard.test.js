// The dashboard in headless Chromium against the real server: sign in,
// create an experiment with two variants through the forms, record events
// through the API, and see the page show exactly what the read endpoint
// serves (views, rewards, rates, weights); edit, reset, delete; refusals
// (a wrong password, no session, an API key); keyboard use. Screenshots of
// the list and the experiment page, desktop (1280) and phone (390) wide, go
// to target/screenshots/ for a reviewer.

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { Api, MynaServer, OWNER, launchBrowser, until } from "./harness.js";

const here = dirname(fileURLToPath(import.meta.url));
/** Where the screenshots go (the README names this folder). */
const SHOTS = resolve(here, "../../target/screenshots");
const HOUR = 3_600_000;

let server, api, browser;
before(async () => {
  mkdirSync(SHOTS, { recursive: true });
  server = await MynaServer.start();
  api = new Api(server);
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close().catch(() => {});
  await server?.dispose();
});

/** A new browser context of `width`, signed in; resolves to its page. */
async function signedIn(width = 1280) {
  const context = await browser.newContext({ viewport: { width, height: 900 } });
  const page = await context.newPage();
  await page.goto(`${server.url}/`);
  assert.match(page.url(), /\/signin/, "no session: the sign-in page");
  await page.fill("#email", OWNER.email);
  await page.fill("#password", OWNER.password);
  await Promise.all([page.waitForURL(`${server.url}/`), page.click("button[type=submit]")]);
  return page;
}

/** The numbers of the results table: `{ id: { views, reward, rate, weight, weightText } }`. */
/** In the page: the focused element's outline colour against the first
 * opaque background around it (the outline sits outside the element), as a
 * WCAG contrast ratio. */
function focusRingContrast() {
  const rgb = (c) => c.match(/[0-9.]+/g).map(Number);
  const luminance = ([r, g, b]) => {
    const lin = (v) => ((v /= 255) <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4);
    return 0.2126 * lin(r) + 0.7152 * lin(g) + 0.0722 * lin(b);
  };
  const focused = document.activeElement;
  let around = focused.parentElement;
  let background = "rgb(255, 255, 255)";
  for (; around; around = around.parentElement) {
    const c = getComputedStyle(around).backgroundColor;
    if (rgb(c)[3] !== 0 && c !== "transparent") {
      background = c;
      break;
    }
  }
  const [a, b] = [luminance(rgb(getComputedStyle(focused).outlineColor)), luminance(rgb(background))];
  const contrast = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
  return { element: focused.outerHTML.slice(0, 80), contrast: Math.round(contrast * 100) / 100 };
}

function shown(page) {
  return page.$$eval("#variants tbody tr", (rows) =>
    Object.fromEntries(
      rows.map((row) => {
        const cell = (c) => row.querySelector(`td.${c}`);
        return [
          row.dataset.variant,
          {
            views: Number(cell("views").dataset.value),
            reward: Number(cell("reward").dataset.value),
            rate: cell("rate").dataset.value === "" ? null : Number(cell("rate").dataset.value),
            rateText: cell("rate").textContent.trim(),
            weight: Number(cell("weight").dataset.value),
            weightText: cell("weight").textContent.trim(),
          },
        ];
      }),
    ),
  );
}

/** Every dashboard page for an experiment uuid. */
const pages = (uuid) => ["/", "/experiments/new", `/experiments/${uuid}`, `/experiments/${uuid}/reset`, `/experiments/${uuid}/delete`, "/keys"];

test("a wrong password and a missing session are refused", async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  try {
    for (const path of ["/", "/keys", "/experiments/new"]) {
      const res = await fetch(server.url + path, { redirect: "manual" });
      assert.equal(res.status, 303, path);
      assert.match(res.headers.get("location"), /^\/signin/);
    }
    await page.goto(`${server.url}/signin`);
    await page.fill("#email", OWNER.email);
    await page.fill("#password", "not the password");
    const [answer] = await Promise.all([page.waitForNavigation(), page.click("button[type=submit]")]);
    assert.equal(answer.status(), 401);
    assert.match(await page.textContent("[role=alert]"), /The email or password is not right/);
    assert.ok(page.url().endsWith("/signin"), "still on the sign-in page");
    const cookies = await context.cookies();
    assert.equal(cookies.find((c) => c.name === "myna_session"), undefined, "no session cookie");
  } finally {
    await context.close();
  }
});

test("an API key cannot reach any dashboard page", async () => {
  const experiment = await api.createExperiment("Key-proof", { a: {}, b: {} });
  const key = await api.createApiKey("page");
  for (const path of pages(experiment.uuid)) {
    const sep = path.includes("?") ? "&" : "?";
    for (const [url, headers] of [
      [server.url + path, { authorization: `ApiKey ${key}` }],
      [`${server.url}${path}${sep}apikey=${key}`, {}],
    ]) {
      const res = await fetch(url, { headers, redirect: "manual" });
      assert.equal(res.status, 303, `${url} ${JSON.stringify(headers)}`);
      assert.match(res.headers.get("location"), /^\/signin/);
      assert.doesNotMatch(await res.text(), /Key-proof/);
    }
  }
  // A browser sending the key on every request lands on the sign-in page.
  const context = await browser.newContext({ extraHTTPHeaders: { authorization: `ApiKey ${key}` } });
  try {
    const page = await context.newPage();
    await page.goto(`${server.url}/experiments/${experiment.uuid}`);
    assert.match(page.url(), /\/signin\?next=/);
    assert.equal(await page.locator("h1").textContent(), "Sign in");
  } finally {
    await context.close();
  }
  await api.ok("DELETE", `/v2/experiment/${experiment.uuid}`);
});

test("sign in, create an experiment with two variants, record through the API: the page shows what the read endpoint serves; edit, reset, delete", async () => {
  // Neighbours for the list.
  await api.createExperiment("Headline test", { plain: {}, bold: {}, short: {} }, "draft");
  await api.createExperiment("Old pricing page", { cheap: {}, dear: {} }, "archived");

  const page = await signedIn();
  // An API key through the keys page, for the snippet.
  await page.click("header nav a[href='/keys']");
  await page.fill("#key-name", "landing page");
  await Promise.all([page.waitForURL(/\/keys\?done=created/), page.click("button:has-text('Create API key')")]);
  const key = (await page.textContent("#keys tbody tr:has-text('landing page') td.mono")).trim();
  assert.match(key, /^[0-9a-f-]{36}$/);

  // Create through the form.
  await page.click("header nav a[href='/']");
  await page.click("a[href='/experiments/new']");
  await page.fill("#name", "Buy button");
  await page.selectOption("#visibility", "published");
  await page.fill("#variants", "green\nblue");
  await Promise.all([page.waitForURL(/\/experiments\/[0-9a-f-]{36}\?done=created/), page.click("button:has-text('Create experiment')")]);
  const uuid = (await page.textContent("#uuid")).trim();
  const created = await api.read(uuid);
  assert.equal(created.name, "Buy button");
  assert.equal(created.visibility, "published");
  assert.deepEqual(Object.keys(created.variants), ["green", "blue"]);

  // The snippet has the API root, the key and the uuid filled in.
  const snippet = await page.textContent("#snippet-code");
  assert.match(snippet, /import \{ Myna \} from "myna-sdk";/);
  assert.ok(snippet.includes(`apiRoot: "${server.url}"`), snippet);
  assert.ok(snippet.includes(`apiKey: "${key}"`), snippet);
  assert.ok(snippet.includes(`myna.experiment("${uuid}")`), snippet);

  // Events through the API, as pages send them, spread over the last hours.
  const now = Date.now();
  const events = [];
  for (let h = 12; h >= 0; h--) {
    for (let i = 0; i < 20; i++) {
      const variant = i % 2 ? "green" : "blue";
      const timestamp = now - h * HOUR - i * 1000;
      events.push({ typename: "view", variant, timestamp });
      if ((variant === "green" && i % 5 === 1) || (variant === "blue" && i % 10 === 0 && h % 2 === 0)) {
        events.push({ typename: "reward", variant, amount: 1, timestamp });
      }
    }
  }
  await api.ok("POST", `/v2/experiment/${uuid}/record`, {
    auth: `ApiKey ${key}`,
    body: { batch: crypto.randomUUID(), events },
  });

  // The page shows what the read endpoint serves (weights refresh within
  // 250 ms of a change, so both are polled until they settle and agree).
  let last, form, seen;
  await until("the page to show the read endpoint's numbers", async () => {
    const before = await api.read(uuid);
    await page.goto(`${server.url}/experiments/${uuid}`);
    seen = await shown(page);
    form = await api.read(uuid);
    last = { before: before.variants, form: form.variants, seen };
    // Fresh weights (computed from these counts) favour green.
    const fresh = form.variants.green.weight > form.variants.blue.weight;
    return fresh && ["green", "blue"].every((id) => {
      const [b, v, s] = [before.variants[id], form.variants[id], seen[id]];
      return v.views > 0 && b.weight === v.weight && s.views === v.views && s.reward === v.totalReward && s.weight === v.weight;
    });
  }).catch((e) => {
    throw new Error(`${e.message}\n${JSON.stringify(last)}`);
  });
  for (const id of ["green", "blue"]) {
    const v = form.variants[id];
    assert.equal(seen[id].views, v.views);
    assert.equal(seen[id].reward, v.totalReward);
    assert.equal(seen[id].rate, v.totalReward / v.views);
    assert.equal(seen[id].rateText, `${((100 * v.totalReward) / v.views).toFixed(2)}\u00a0%`);
    assert.equal(seen[id].weight, v.weight, "exactly the weight served");
    assert.ok(seen[id].weightText.endsWith(v.weight.toFixed(4)), seen[id].weightText);
  }
  assert.ok(form.variants.green.weight > form.variants.blue.weight, "green converts better");
  // The charts: one line per variant in each, with accessible titles.
  assert.equal(await page.locator("#charts svg.chart").count(), 2);
  assert.equal(await page.locator("#charts svg.chart polyline").count(), 4);
  assert.equal(await page.textContent("#weights-chart-t"), "Weight of each variant over time");

  // Screenshots: the experiment page and the list, desktop and phone.
  await page.screenshot({ path: join(SHOTS, "experiment-desktop.png"), fullPage: true });
  await page.goto(`${server.url}/`);
  await page.screenshot({ path: join(SHOTS, "list-desktop.png"), fullPage: true });
  const phone = await signedIn(390);
  await phone.goto(`${server.url}/experiments/${uuid}`);
  assert.ok(
    await phone.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth + 1),
    "no sideways scrolling on a phone",
  );
  await phone.screenshot({ path: join(SHOTS, "experiment-phone.png"), fullPage: true });
  await phone.goto(`${server.url}/`);
  assert.ok(await phone.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth + 1));
  await phone.screenshot({ path: join(SHOTS, "list-phone.png"), fullPage: true });
  await phone.context().close();

  // The list: totals and the best variant.
  const row = page.locator(`#experiments tr[data-uuid="${uuid}"]`);
  const total = form.variants.green.views + form.variants.blue.views;
  assert.equal(Number(await row.locator("td.num").getAttribute("data-value")), total);
  assert.match(await row.textContent(), /green .*likely best/);
  // Filtered like the search endpoint.
  await page.check("input[name=visibility][value=draft]");
  await page.click("form.search button");
  assert.equal(await page.locator("#experiments tbody tr").count(), 1);
  assert.match(await page.textContent("#experiments tbody"), /Headline test/);

  // Edit: the name and a variant's settings.
  await page.goto(`${server.url}/experiments/${uuid}`);
  await page.fill("#edit-name", "Buy button, round 2");
  await page.fill("#v0-settings", '{"color": "green"}');
  await Promise.all([page.waitForURL(/\?done=saved/), page.click("button:has-text('Save changes')")]);
  assert.match(await page.textContent("[role=status]"), /saved/);
  const edited = await api.read(uuid);
  assert.equal(edited.name, "Buy button, round 2");
  assert.deepEqual(edited.variants.green.settings, { color: "green" });
  assert.equal(edited.variants.green.views, form.variants.green.views, "counts kept");
  // Traffic: "a decision sooner" chosen in the select becomes the setting.
  assert.equal(await page.inputValue("#edit-mode"), "conversions");
  await page.selectOption("#edit-mode", "decide");
  await Promise.all([page.waitForURL(/\?done=saved/), page.click("button:has-text('Save changes')")]);
  assert.equal((await api.read(uuid)).settings["myna.weights.mode"], "decide");
  assert.equal(await page.inputValue("#edit-mode"), "decide", "the page shows the mode chosen");

  // Reset, with a confirmation.
  await page.click("a[href$='/reset']");
  await Promise.all([page.waitForURL(/\?done=reset/), page.click("button:has-text('Reset counts')")]);
  const reset = await api.read(uuid);
  assert.deepEqual(
    Object.values(reset.variants).map((v) => [v.views, v.totalReward, v.weight]),
    [[0, 0, 0.5], [0, 0, 0.5]],
  );
  const zero = await shown(page);
  assert.equal(zero.green.views, 0);
  assert.equal(zero.green.weight, 0.5);

  // Delete, with a confirmation.
  await page.click("a[href$='/delete']");
  await Promise.all([page.waitForURL(/\?done=deleted/), page.click("button:has-text('Delete experiment')")]);
  assert.equal((await api.call("GET", `/v2/experiment/${uuid}`)).status, 404);
  assert.equal(await page.locator(`#experiments tr[data-uuid="${uuid}"]`).count(), 0);
  await page.context().close();
});

test("keyboard: skip link, visible focus, and an experiment reached with Tab and Enter", async () => {
  const experiment = await api.createExperiment("Keyboard reachable", { a: {}, b: {} });
  const page = await signedIn();
  try {
    await page.keyboard.press("Tab");
    assert.equal(await page.evaluate(() => document.activeElement.textContent), "Skip to content");
    const outline = await page.evaluate(() => getComputedStyle(document.activeElement).outlineStyle);
    assert.notEqual(outline, "none", "focus is visible");
    let reached = false;
    const faint = [];
    for (let i = 0; i < 40 && !reached; i++) {
      await page.keyboard.press("Tab");
      reached = await page.evaluate((uuid) => document.activeElement.getAttribute("href") === `/experiments/${uuid}`, experiment.uuid);
      const ring = await page.evaluate(focusRingContrast);
      if (ring.contrast < 3) faint.push(ring);
    }
    assert.ok(reached, "the experiment's link is reachable with Tab");
    // WCAG 1.4.11: the ring stands out at least 3:1 from what is around it
    // (the top bar's controls and the page's alike).
    assert.deepEqual(faint, [], "every focus ring on the way has a contrast of at least 3:1");
    await Promise.all([page.waitForURL(`${server.url}/experiments/${experiment.uuid}`), page.keyboard.press("Enter")]);
    assert.equal(await page.textContent("h1"), "Keyboard reachable");
  } finally {
    await page.context().close();
  }
});

test("a clearly decided experiment: its page leads with the verdict sentence, the list says decided", async () => {
  const created = await api.createExperiment("Signup button", { green: {}, blue: {} });
  const uuid = created.uuid;
  await api.update(uuid, { settingsUpdates: { "myna.decision.minViews": 200 } });
  const key = await api.createApiKey("decision");
  // Blue converts five times better, on 400 views each.
  for (const [variant, rewards] of [["green", 20], ["blue", 100]]) {
    const events = Array.from({ length: 400 }, () => ({ typename: "view", variant }));
    for (let i = 0; i < rewards; i++) events.push({ typename: "reward", variant, amount: 1 });
    await api.ok("POST", `/v2/experiment/${uuid}/record`, { auth: `ApiKey ${key}`, body: { batch: crypto.randomUUID(), events } });
  }
  const decision = await api.ok("GET", `/v2/experiment/${uuid}/decision`);
  assert.equal(decision.verdict, "decided");
  assert.equal(decision.leader, "blue");
  // An API key gets the answer of a missing experiment.
  const asKey = await api.call("GET", `/v2/experiment/${uuid}/decision`, { auth: `ApiKey ${key}` });
  assert.equal(asKey.status, 404);

  const page = await signedIn();
  await page.goto(`${server.url}/experiments/${uuid}`);
  const message = (await page.textContent("#verdict-message")).replace(/\s+/g, " ").trim();
  assert.ok(message.endsWith(decision.message), message);
  assert.equal(await page.getAttribute("#verdict", "data-verdict"), "decided");
  // The verdict is the first thing after the title: before the results.
  const order = await page.evaluate(() => {
    const main = document.querySelector("#verdict");
    const results = document.querySelector("#results");
    return main.compareDocumentPosition(results) & Node.DOCUMENT_POSITION_FOLLOWING;
  });
  assert.ok(order, "the verdict comes before the results");
  assert.ok(await page.isVisible("#verdict-message"));
  assert.equal(await page.locator("#health").count(), 0, "every check is ok");
  await page.screenshot({ path: join(SHOTS, "experiment-decided-desktop.png"), fullPage: true });

  await page.goto(`${server.url}/`);
  const row = page.locator(`#experiments tr[data-uuid="${uuid}"]`);
  assert.equal(await row.locator("td.verdict").getAttribute("data-verdict"), "decided");
  assert.equal((await row.locator("td.verdict").textContent()).trim(), "decided");
  await page.context().close();
});

test("many variants and long unbroken ids never widen the page: the list and the experiment page on a phone, the edit form on a desktop", async () => {
  const variants = Object.fromEntries(Array.from({ length: 30 }, (_, i) => [`variant-${String(i).padStart(2, "0")}`, {}]));
  variants["v".repeat(128)] = {};
  const long = await api.ok("POST", "/v2/experiment", {
    body: { name: "Widening test", id: "w".repeat(64), visibility: "published", variants },
  });
  const wide = (page) => page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  const phone = await signedIn(390);
  try {
    await phone.goto(`${server.url}/?q=widening`);
    assert.match(await phone.textContent("#experiments tbody"), /31: variant-00, variant-01/);
    assert.ok((await wide(phone)) <= 1, `the list is ${await wide(phone)} px wider than a phone`);
    await phone.goto(`${server.url}/experiments/${long.uuid}`);
    assert.ok((await wide(phone)) <= 1, `the experiment page is ${await wide(phone)} px wider than a phone`);
  } finally {
    await phone.context().close();
  }
  const desktop = await signedIn(1280);
  try {
    await desktop.goto(`${server.url}/experiments/${long.uuid}`);
    assert.ok((await wide(desktop)) <= 1, `the experiment page is ${await wide(desktop)} px wider than the window`);
  } finally {
    await desktop.context().close();
  }
  await api.ok("DELETE", `/v2/experiment/${long.uuid}`);
});

test("on the keys page the Deployment card stands apart from the keys table", async () => {
  await api.createApiKey("gap");
  const page = await signedIn();
  try {
    await page.goto(`${server.url}/keys`);
    const gap = await page.evaluate(
      () => document.querySelector("#deployment").getBoundingClientRect().top - document.querySelector("#keys").closest(".table-wrap").getBoundingClientRect().bottom,
    );
    assert.ok(gap >= 12, `${gap} px between the keys table and the Deployment card`);
  } finally {
    await page.context().close();
  }
});

test("revoking an API key takes a second click that says what it breaks; then the key is refused", async () => {
  const page = await signedIn();
  try {
    await page.goto(`${server.url}/keys`);
    await page.fill("#key-name", "to revoke");
    await Promise.all([page.waitForURL(/\/keys\?done=created/), page.click("button:has-text('Create API key')")]);
    const row = page.locator("#keys tbody tr:has-text('to revoke')");
    const key = (await row.locator("td.mono").textContent()).trim();
    const confirm = row.locator("button:has-text('Revoke for good')");
    assert.equal(await confirm.isVisible(), false, "no one-click revoke");
    await row.locator("summary[aria-label='Revoke the key to revoke']").click();
    assert.match(await row.textContent(), /stop getting experiments and counting events/);
    await Promise.all([page.waitForURL(/\/keys\?done=revoked/), confirm.click()]);
    const answer = await fetch(`${server.url}/v2/experiment?apikey=${key}`);
    assert.equal(answer.status, 401, "the key is refused at once");
  } finally {
    await page.context().close();
  }
});

test("the results table fits its card on desktops (1280, 1440, 1920 px), last column included; every table's scroll region is reachable by keyboard", async () => {
  // Numbers as wide as a busy experiment's: tens of thousands of views,
  // fractional rewards, names and ids side by side.
  const created = await api.createExperiment("Wide results", { "control-long-name": {}, "bold-headline-b": {}, "short-c": {} });
  const key = await api.createApiKey("wide");
  const events = [];
  for (const [variant, views, rewards] of [["control-long-name", 23456, 1234], ["bold-headline-b", 21987, 1456], ["short-c", 19876, 987]]) {
    events.push(...Array.from({ length: views }, () => ({ typename: "view", variant })));
    events.push(...Array.from({ length: rewards }, () => ({ typename: "reward", variant, amount: 0.25 })));
  }
  for (let i = 0; i < events.length; i += 1000) {
    await api.ok("POST", `/v2/experiment/${created.uuid}/record`, {
      auth: `ApiKey ${key}`,
      body: { batch: crypto.randomUUID(), events: events.slice(i, i + 1000) },
    });
  }
  await api.countsReach(created.uuid, {
    "control-long-name": { views: 23456, totalReward: 308.5 },
    "bold-headline-b": { views: 21987, totalReward: 364 },
    "short-c": { views: 19876, totalReward: 246.75 },
  });
  for (const width of [1280, 1440, 1920]) {
    const page = await signedIn(width);
    try {
      await page.goto(`${server.url}/experiments/${created.uuid}`);
      const fit = await page.evaluate(() => {
        const wrap = document.querySelector("#results .table-wrap");
        const table = wrap.querySelector("table");
        const last = table.querySelector("tbody tr td:last-child").getBoundingClientRect();
        const box = wrap.getBoundingClientRect();
        return { table: table.scrollWidth, wrap: wrap.clientWidth, lastRight: last.right, wrapRight: box.right };
      });
      assert.ok(fit.table <= fit.wrap, `${width} px: the table is ${fit.table} px in ${fit.wrap} px`);
      assert.ok(fit.lastRight <= fit.wrapRight, `${width} px: "Weight now" is cut off (${JSON.stringify(fit)})`);
      if (width === 1280) await page.locator("#results").screenshot({ path: join(SHOTS, "results-1280.png") });
      // A wrapper that may scroll (on narrower windows) is a named region in the tab order.
      const wraps = await page.$$eval(".table-wrap", (all) =>
        all.map((w) => ({ tabindex: w.getAttribute("tabindex"), role: w.getAttribute("role"), label: w.getAttribute("aria-label") })),
      );
      assert.ok(wraps.length >= 2, "the results and the numbers behind the charts");
      for (const w of wraps) {
        assert.equal(w.tabindex, "0", JSON.stringify(w));
        assert.equal(w.role, "region", JSON.stringify(w));
        assert.ok(w.label, JSON.stringify(w));
      }
    } finally {
      await page.context().close();
    }
  }
  await api.ok("DELETE", `/v2/experiment/${created.uuid}`);
});

test("removing a variant with counts takes a second, named button; one tick and Enter removes nothing", async () => {
  const created = await api.createExperiment("Removal asked", { keep: {}, drop: {} });
  const key = await api.createApiKey("removal");
  await api.ok("POST", `/v2/experiment/${created.uuid}/record`, {
    auth: `ApiKey ${key}`,
    body: { batch: crypto.randomUUID(), events: [{ typename: "view", variant: "drop" }, { typename: "reward", variant: "drop", amount: 1 }] },
  });
  const page = await signedIn();
  try {
    await page.goto(`${server.url}/experiments/${created.uuid}`);
    await page.check("#v1-remove");
    await page.focus("#edit-name");
    await Promise.all([page.waitForNavigation(), page.keyboard.press("Enter")]);
    assert.equal((await api.read(created.uuid)).variants.drop.views, 1, "nothing removed");
    assert.equal(await page.evaluate(() => document.activeElement.id), "form-problems", "the problem takes the focus");
    assert.match(await page.textContent("#form-problems"), /Removing variant drop: It deletes the variant's 1 view and/);
    assert.equal(await page.getAttribute("#v1-remove", "aria-invalid"), "true");
    assert.ok(await page.isChecked("#v1-remove"), "the tick is kept");
    await Promise.all([page.waitForURL(/\?done=saved/), page.click("button:has-text('Remove and save')")]);
    assert.deepEqual(Object.keys((await api.read(created.uuid)).variants), ["keep"]);
    assert.equal(await page.locator("button:has-text('Remove and save')").count(), 0);
  } finally {
    await page.context().close();
  }
});

test("a refused new-experiment form: the problems, in the form's words, take the focus; the field is marked", async () => {
  const page = await signedIn();
  try {
    await page.goto(`${server.url}/experiments/new`);
    await page.fill("#name", "Refused form");
    await page.fill("#variants", "green\nblue\ngreen");
    await Promise.all([page.waitForNavigation(), page.click("button:has-text('Create experiment')")]);
    assert.equal(await page.evaluate(() => document.activeElement.id), "form-problems");
    assert.match(await page.textContent("#form-problems"), /Variant 3 \(green\): Variant ids must be unique\./);
    assert.equal(await page.getAttribute("#variants", "aria-invalid"), "true");
    assert.equal(await page.inputValue("#variants"), "green\nblue\ngreen", "kept as typed");
  } finally {
    await page.context().close();
  }
});

test("a new-experiment form sent again after Back leads to the experiment it created, creating no second one", async () => {
  const page = await signedIn();
  try {
    await page.goto(`${server.url}/`);
    await page.click("a[href='/experiments/new']");
    await page.fill("#name", "Sent after Back");
    await page.fill("#variants", "green\nblue");
    await Promise.all([page.waitForURL(/\/experiments\/[0-9a-f-]{36}\?done=created/), page.click("button:has-text('Create experiment')")]);
    const created = new URL(page.url()).pathname;
    await page.goBack();
    await page.waitForSelector("#name");
    await page.fill("#name", "Sent after Back");
    await page.fill("#variants", "green\nblue");
    await Promise.all([page.waitForURL(/\?done=sent-before/), page.click("button:has-text('Create experiment')")]);
    assert.equal(new URL(page.url()).pathname, created);
    assert.equal(await page.locator("text=had been sent before").count(), 1);
    const found = await api.ok("GET", "/v2/experiment?q=Sent%20after%20Back&visibility=draft,published,archived");
    assert.equal(found.results.length, 1, JSON.stringify(found));
  } finally {
    await page.context().close();
  }
});
