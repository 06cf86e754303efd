// The README's "Run an experiment from HTML" page, run as written: the
// block after `<!-- html-example -->` is served (the server's URL and an API
// key filled in) by a static site on its own origin to headless Chromium, against
// the real server. Exactly one headline shows, the link is bound to the same
// variant, and a click on it is counted: one view, one reward.

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { staticSite, until, world } from "./harness.js";

const readme = readFileSync(join(dirname(fileURLToPath(import.meta.url)), "../../README.md"), "utf8");

/** The README's example page. */
function examplePage() {
  const marker = readme.indexOf("<!-- html-example -->");
  assert.ok(marker >= 0, "the README marks its example page");
  const block = readme.slice(marker).match(/```html\n([\s\S]*?)```/);
  assert.ok(block, "an html block follows the marker");
  return block[1];
}

let w;
before(async () => {
  w = await world();
});
after(() => w?.close());

const VARIANTS = {
  plain: { name: "Plain", settings: { label: "Buy now", link: "/buy.html" } },
  bold: { name: "Bold", settings: { label: "Get yours at half price", link: "/buy.html?offer=half" } },
};

test("the README's HTML example runs as written: one variant shown and bound, the click counted", async () => {
  const experiment = await w.api.ok("POST", "/v2/experiment", {
    body: { name: "Hero", id: "hero", visibility: "published", variants: VARIANTS },
  });
  const key = await w.api.createApiKey("readme");
  const html = examplePage()
    .replaceAll("https://ab.example.com", w.server.url)
    .replaceAll("YOUR-API-KEY", key);
  assert.ok(html.includes(`${w.server.url}/v2/deployment/${key}/myna.js`), html);

  const dir = mkdtempSync(join(tmpdir(), "myna-readme-"));
  writeFileSync(join(dir, "index.html"), html);
  writeFileSync(join(dir, "buy.html"), "<!doctype html><title>bought</title>\n");
  const site = await staticSite({ "/": dir });
  const context = await w.browser.newContext();
  try {
    const page = await context.newPage();
    await page.goto(`${site.url}/`);

    // The bound state: one headline visible, the link's text and href those of the same variant.
    const shown = await until("the page bound to one variant", () =>
      page.evaluate(() => {
        const visible = (e) => e.checkVisibility({ visibilityProperty: true });
        const headlines = [...document.querySelectorAll("h1")].filter(visible).map((h) => h.dataset.show);
        const link = document.querySelector("a");
        return headlines.length == 1 && visible(link)
          ? { variant: headlines[0], text: link.textContent, href: link.getAttribute("href") }
          : null;
      }),
    );
    const chosen = VARIANTS[shown.variant];
    assert.ok(chosen, `a known variant: ${JSON.stringify(shown)}`);
    assert.equal(shown.text, chosen.settings.label);
    assert.equal(shown.href, chosen.settings.link);

    await Promise.all([page.waitForURL(/\/buy\.html/), page.click("a")]);
    const expected = { plain: { views: 0, totalReward: 0 }, bold: { views: 0, totalReward: 0 } };
    expected[shown.variant] = { views: 1, totalReward: 1 };
    await w.api.countsReach(experiment.uuid, expected);
  } finally {
    await context.close();
    await site.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
