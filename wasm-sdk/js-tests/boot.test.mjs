// The deployment's classic script (pkg/boot.js, served as myna.js) in
// headless Chromium, without a server: its two placeholders filled in as the
// server fills them (a deployment form; the URL of the built package's
// index.js), events going to a dead root. It hides the experiments'
// elements at once, binds the page once the SDK is connected, and shows
// the page as written when it is late or the SDK fails to load. Run by
// scripts/test-sdk.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { launch, repo, servePage } from "./browser.mjs";

const deployment = {
  typename: "deployment",
  uuid: "k",
  apiKey: "k",
  apiRoot: "http://127.0.0.1:9",
  latest: "http://127.0.0.1:9/v2/deployment/k/myna.json",
  experiments: [
    {
      typename: "experiment",
      uuid: "6f1c1a52-3b0e-4d8e-9f39-0c6f5c1d2a11",
      id: "hero",
      name: "Hero banner",
      settings: {},
      variants: [
        { typename: "variant", id: "a", name: "a", weight: 0, settings: {} },
        { typename: "variant", id: "b", name: "b", weight: 1, settings: { title: "Hello" } },
      ],
    },
  ],
};

/** Runs `check(tab)` on a page that includes the filled-in boot script. */
async function withPage({ timeout = 5000, sdk = "/pkg/index.js", sdkUrl, csp = false, trustedTypes = false, extra = "" }, check) {
  const boot = await readFile(join(repo, "wasm-sdk", "pkg", "boot.js"), "utf8");
  // A strict policy: the README's list, nothing for styles.
  const policy = `<meta http-equiv="Content-Security-Policy" content="default-src 'self'; script-src 'self' 'nonce-n'${csp == "no-wasm" ? "" : " 'wasm-unsafe-eval'"}; connect-src 'self' http://127.0.0.1:9">`;
  // Trusted Types enforced, no policy: `innerHTML` takes no string.
  const tt = `<meta http-equiv="Content-Security-Policy" content="require-trusted-types-for 'script'; trusted-types 'none'">`;
  const page = (origin) => `<!doctype html><html><head>${csp ? policy : ""}${trustedTypes ? tt : ""}
<script nonce="n" data-timeout="${timeout}">${boot
    .replace('"__MYNA_DEPLOYMENT__"', () => JSON.stringify(deployment))
    .replace('"__MYNA_SDK__"', () => JSON.stringify(sdkUrl ?? origin + sdk))}</script>
</head><body>
<p class="myna-hero" data-show="a" id="a">A</p>
<h1 class="myna-hero" data-bind="text=title" id="t">Welcome</h1>
<button class="myna-hero" data-goal="click" id="goal">Buy</button>
${trustedTypes ? '<div class="myna-hero" data-bind="html=title" id="h">as written</div>' : ""}
${extra}
<script nonce="n">
  const seen = (id) => getComputedStyle(document.getElementById(id)).visibility;
  window.during = [seen("a"), seen("t"), seen("goal")];
</script>
</body></html>`;
  const site = await servePage(page);
  const browser = await launch();
  try {
    const tab = await browser.newPage();
    const errors = [];
    tab.on("pageerror", (e) => errors.push(e.message));
    // What the owner is told in the console (boot.js's own warnings).
    const warnings = [];
    tab.on("console", (m) => m.type() == "warning" && m.text().startsWith("myna.js:") && warnings.push(m.text()));
    await tab.goto(site.origin);
    await check(tab, warnings);
    assert.deepEqual(errors, [], "no page errors");
  } finally {
    await browser.close();
    await site.close();
  }
}

// What the page looks like once `window.myna` settled.
const settled = (tab) =>
  tab.evaluate(async () => {
    let queued = null;
    let failed = false;
    try {
      queued = (await window.myna).queued;
    } catch {
      failed = true;
    }
    const t = document.getElementById("t");
    return {
      during: window.during,
      styles: document.querySelectorAll("style").length + document.adoptedStyleSheets.length,
      aHidden: getComputedStyle(document.getElementById("a")).display == "none",
      title: t.textContent,
      visible: getComputedStyle(t).visibility,
      queued,
      failed,
    };
  });

test("boot.js hides the experiments' elements, then binds the page", async () => {
  await withPage({}, async (tab, warnings) => {
    const seen = await settled(tab);
    assert.deepEqual(seen.during, ["hidden", "hidden", "visible"], "hidden at once; goals stay visible");
    assert.equal(seen.styles, 0, "the style is removed");
    assert.equal(seen.aHidden, true, "b was drawn: data-show=a hides");
    assert.equal(seen.title, "Hello");
    assert.deepEqual(warnings, [], "nothing to tell the owner");
    assert.equal(seen.visible, "visible");
    assert.equal(seen.queued, 1, "one view");
    const id = await tab.evaluate(async () => (await window.myna).experiments.hero.id);
    assert.equal(id, "hero", "window.myna is the connected client");
    // The wasm is preloaded beside the module, and that is its one download.
    const preload = await tab.evaluate(() => {
      const link = document.querySelector('link[rel="preload"]');
      return link && { as: link.as, crossOrigin: link.crossOrigin, href: link.href };
    });
    const wasm = new URL("/pkg/myna_sdk_bg.wasm", tab.url()).href;
    assert.deepEqual(preload, { as: "fetch", crossOrigin: "anonymous", href: wasm });
    const downloads = await tab.evaluate((url) => performance.getEntriesByName(url).length, wasm);
    assert.equal(downloads, 1, "the SDK's fetch took the preload's response");
  });
});

test("boot.js shows a chosen variant the page wrote hidden for visitors without JavaScript, and gives its autofocus field the focus", async () => {
  // Variant b is drawn (weight 1). Written for pages without JavaScript:
  // a's elements shown, b's hidden every way a page hides one.
  const extra = `<div class="myna-hero" data-show="a" id="no-js-a"><input id="focus-a" autofocus></div>
<div class="myna-hero" data-show="b" id="attr" hidden aria-hidden="true"><input id="focus-b" autofocus></div>
<p class="myna-hero" data-show="b" id="inline" style="display: none">B</p>
<p class="myna-hero" data-hide="a" id="unless-a" hidden>not a</p>`;
  await withPage({ extra }, async (tab) => {
    await settled(tab);
    const seen = await tab.evaluate(() => {
      const shown = (id) => {
        const e = document.getElementById(id);
        return e.getClientRects().length > 0 && !e.closest("[aria-hidden=true]");
      };
      return {
        shown: ["no-js-a", "attr", "inline", "unless-a"].filter(shown),
        focused: document.activeElement.id,
      };
    });
    assert.deepEqual(seen.shown, ["attr", "inline", "unless-a"], "b's elements shown, to screen readers too; a's hidden");
    assert.equal(seen.focused, "focus-b", "the shown variant's autofocus field has the focus");
  });
});

test("boot.js binds an experiment's elements added later (a framework rendering after it), before they are painted, counting one view", async () => {
  await withPage({}, async (tab) => {
    await settled(tab);
    const seen = await tab.evaluate(async () => {
      const painted = [];
      // What was bound before stays as it is (a framework's text nodes in it too).
      const text = document.getElementById("t").firstChild;
      const later = document.createElement("div");
      later.innerHTML = '<h2 class="myna-hero" data-bind="text=title" id="later">Later</h2><span class="other">x</span>';
      document.body.append(later);
      // What the next frame paints.
      await new Promise((r) => requestAnimationFrame(() => r()));
      painted.push(document.getElementById("later").textContent);
      // Nodes of no experiment bind nothing.
      document.body.append(Object.assign(document.createElement("p"), { textContent: "plain" }));
      await new Promise((r) => setTimeout(r, 50));
      // An element of the experiment added alone is bound too.
      const alone = Object.assign(document.createElement("p"), { className: "myna-hero", id: "alone", textContent: "x" });
      alone.dataset.bind = "text=title";
      document.body.append(alone);
      await new Promise((r) => requestAnimationFrame(() => r()));
      painted.push(alone.textContent);
      const kept = document.getElementById("t").firstChild === text;
      return { painted, kept, queued: (await window.myna).queued };
    });
    assert.deepEqual(seen.painted, ["Hello", "Hello"]);
    assert.equal(seen.kept, true, "the bound title's text node was not replaced");
    assert.equal(seen.queued, 1, "the visitor's one view, not a second");
  });
});

test("boot.js hides the experiments' elements under a CSP that allows no style", async () => {
  await withPage({ csp: true }, async (tab) => {
    const seen = await settled(tab);
    assert.deepEqual(seen.during, ["hidden", "hidden", "visible"], "no flicker");
    assert.equal(seen.styles, 0, "the style sheet is removed");
    assert.equal(seen.title, "Hello", "bound");
    assert.equal(seen.queued, 1, "one view");
  });
});

test("boot.js shows as written, uncounted, an experiment Trusted Types keep from binding", async () => {
  await withPage({ trustedTypes: true }, async (tab, warnings) => {
    const errors = tab.evaluate(
      () => new Promise((ok) => window.myna.then((m) => (m.on("error", (e) => ok([e.name, e.code])), m.bind(document)))),
    );
    const seen = await settled(tab);
    assert.equal(seen.styles, 0, "the style is removed");
    assert.equal(seen.aHidden, false, "as written: nothing half-applied");
    assert.equal(seen.title, "Welcome");
    assert.equal(seen.visible, "visible");
    assert.equal(seen.queued, 0, "no view counted");
    assert.deepEqual(await errors, ["MynaError", "invalid-value"], "bound again, its error is heard");
    assert.match(warnings[0] ?? "", /^myna\.js: The markup of experiment hero could not be bound, so it is shown as written/, "the owner is told");
  });
});

test("boot.js shows the page as written when the SDK is late", async () => {
  await withPage({ timeout: 1 }, async (tab, warnings) => {
    const seen = await settled(tab);
    assert.equal(seen.styles, 0);
    assert.equal(seen.aHidden, false, "not bound");
    assert.equal(seen.title, "Welcome");
    assert.equal(seen.queued, 0, "no view counted");
    assert.match(warnings[0] ?? "", /^myna\.js: the page is shown as written: the SDK was not ready within 1 ms/, "the owner is told");
  });
});

test("boot.js shows the page as written when the SDK fails to load", async () => {
  await withPage({ sdk: "/pkg/missing.js" }, async (tab, warnings) => {
    const seen = await settled(tab);
    assert.equal(seen.failed, true, "window.myna rejects");
    const error = await tab.evaluate(() => window.myna.catch((e) => [e.name, e.code, e.messages.length]));
    assert.deepEqual(error, ["MynaError", "network", 1], "as the SDK's own errors do");
    assert.match(warnings[0] ?? "", /^myna\.js: the page is shown as written: The SDK could not be loaded/, "the owner is told");
    assert.equal(seen.styles, 0);
    assert.equal(seen.title, "Welcome");
    assert.equal(seen.visible, "visible");
  });
});

test("boot.js shows the page as written even when the SDK's URL is not one", async () => {
  // Whatever throws after the style is added, the style goes.
  await withPage({ sdkUrl: "__MYNA_SDK__", timeout: 500 }, async (tab) => {
    const seen = await settled(tab);
    assert.equal(seen.styles, 0);
    assert.equal(seen.title, "Welcome");
    assert.equal(seen.visible, "visible");
  });
});

test("boot.js under a CSP without 'wasm-unsafe-eval' shows the page as written and says what to allow", async () => {
  await withPage({ csp: "no-wasm" }, async (tab, warnings) => {
    const seen = await settled(tab);
    assert.equal(seen.failed, true, "window.myna rejects");
    assert.equal(seen.title, "Welcome");
    assert.equal(seen.visible, "visible");
    assert.match(warnings[0] ?? "", /the page's CSP must allow 'wasm-unsafe-eval' \(not 'unsafe-eval'\) in script-src/, "the fix, not a bundler's");
    const code = await tab.evaluate(() => window.myna.catch((e) => e.code));
    assert.equal(code, "unsupported", "not `network`: retrying will not help");
  });
});
