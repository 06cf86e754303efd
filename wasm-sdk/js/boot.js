// The deployment's one-tag script: `GET /v2/deployment/{key}/myna.js` (a
// classic script, no module: scripts/build-sdk minifies it into pkg/boot.js).
// The server serves it after replacing each of the two string literals
// below exactly once: "__MYNA_DEPLOYMENT__" by the deployment form (JSON), and
// "__MYNA_SDK__" by a JSON string, the absolute URL of the package's index.js
// (scripts/build-sdk fails if minifying changed either). A page includes it
// synchronously in its <head>:
//
//   <script src="https://ab.example.com/v2/deployment/KEY/myna.js" data-timeout="1500"></script>
//
// At once, a style sheet hides every experiment's elements (class `myna-{id}`, or
// the setting `myna.html.cssClass`; elements that are only goals stay
// visible), so nothing flickers. Then the SDK is imported, its wasm
// preloaded beside it (one download: the SDK's fetch takes the preload's
// response), and, once the page is parsed, connected with the deployment (no
// second round trip) and the page bound (`myna.bind(document)`, see its
// declaration) and the style removed. If that
// takes longer than `data-timeout` ms (default 1500), or anything fails
// (server down, import failed), the style goes and the page stays as
// written: nothing is bound, no view counted. `window.myna` is a Promise of
// the connected client (`(await window.myna).experiments.hero`), which
// rejects when connecting failed. Elements of an experiment added to the
// page later are bound when they are added (before they are painted).
//
// Content-Security-Policy: `script-src` must allow the Myna origin (this
// script and the SDK module it imports) and 'wasm-unsafe-eval' (compiling
// the SDK's wasm); `connect-src` the Myna origin (the wasm, events);
// `style-src` needs nothing where the browser has constructed style sheets
// (Chromium 73, Firefox 101, Safari 16.4), else it must allow the <style>
// used instead (it carries this script's nonce, if it has one). No eval, no
// inline script, no style attribute.
(() => {
  const deployment = "__MYNA_DEPLOYMENT__";
  const sdk = "__MYNA_SDK__";
  const doc = document;
  const script = doc.currentScript;
  const ms = +(script && script.dataset.timeout) || 1500;

  // A settings path read flat, nested or anything between (as the SDK's
  // `myna.bind` and core read it).
  const setting = (value, names) => {
    if (value && typeof value == "object") {
      for (let i = 1; i <= names.length; i++) {
        const key = names.slice(0, i).join(".");
        if ({}.hasOwnProperty.call(value, key)) {
          const found = i < names.length ? setting(value[key], names.slice(i)) : value[key];
          if (found !== undefined) return found;
        }
      }
    }
  };
  // The experiments' classes; every element of them but those that are
  // only goals is hidden.
  const classes = deployment.experiments.map(({ id, settings }) => {
    const name = setting(settings, ["myna", "html", "cssClass"]);
    return "." + CSS.escape(typeof name == "string" && name ? name : "myna-" + id);
  });
  const hide = classes
    .map((c) => `${c}:not([data-goal]),${c}[data-show],${c}[data-hide],${c}[data-bind],${c}[data-redirect]{visibility:hidden!important}`)
    .join("");
  // A constructed style sheet where the browser has them (a CSP's
  // style-src does not govern those), else a <style> with this script's
  // nonce.
  const head = doc.head || doc.documentElement;
  let sheet, style;
  try {
    sheet = new CSSStyleSheet();
    sheet.replaceSync(hide);
    doc.adoptedStyleSheets = [...doc.adoptedStyleSheets, sheet];
  } catch {
    sheet = null;
    style = doc.createElement("style");
    if (script && script.nonce) style.nonce = script.nonce;
    style.textContent = hide;
    head.appendChild(style);
  }
  const show = () =>
    sheet ? (doc.adoptedStyleSheets = doc.adoptedStyleSheets.filter((s) => s != sheet)) : style.remove();
  // The style goes. The browser skipped `autofocus` on an element it hid
  // (it looks once, early): the first such element now shown takes the
  // focus, unless something else has it.
  const reveal = () => {
    show();
    const focused = doc.activeElement;
    if (classes.length && (!focused || focused == doc.body)) {
      const marked = doc.querySelectorAll(classes.map((c) => `${c}[autofocus],${c} [autofocus]`).join(","));
      const first = [...marked].find((e) => e.getClientRects().length);
      if (first) first.focus();
    }
  };
  // From here on, whatever happens, the style goes by the deadline.
  let late = false;
  const timer = setTimeout(() => {
    late = true;
    reveal();
    console.warn(`myna.js: the page is shown as written: the SDK was not ready within ${ms} ms (data-timeout)`);
  }, ms);
  // The wasm's download starts now, beside the module's, not once the
  // module has run: the SDK's own fetch of it (the same URL, CORS mode,
  // same-origin credentials) takes this preload's response. Only a head
  // start: a failure here leaves the import to fail on its own.
  try {
    const wasm = doc.createElement("link");
    wasm.rel = "preload";
    wasm.as = "fetch";
    wasm.crossOrigin = "anonymous";
    wasm.href = new URL("myna_sdk_bg.wasm", sdk).href;
    head.appendChild(wasm);
  } catch {}

  const parsed = new Promise((ok) =>
    doc.readyState == "loading" ? doc.addEventListener("DOMContentLoaded", ok, { once: true }) : ok(),
  );
  // The import runs the SDK, which compiles the wasm as its bytes arrive
  // (the preload above is already fetching them); connecting
  // (no network: the deployment is inlined) waits for the parsed page, so
  // the binding's decisions come right after it, before the client's
  // listeners, timer and queue adoption (which wait for the next task).
  // A module that fails to load rejects as the SDK's own errors do: a
  // MynaError-like `network` error (the class itself is in that module).
  const unloaded = (e) => {
    const message = `The SDK could not be loaded: ${e && e.message}`;
    throw Object.assign(new Error(message), {
      name: "MynaError",
      code: "network",
      messages: [{ code: "network", message }],
    });
  };
  const client = Promise.all([import(sdk).catch(unloaded), parsed]).then(([{ Myna }]) =>
    Myna.connect({ apiRoot: deployment.apiRoot, apiKey: deployment.apiKey, experiments: deployment }),
  );
  // Elements of an experiment added later (a framework rendering after
  // this script, a part of the page loaded later) are bound as they come,
  // each added subtree alone (what was bound before is not touched again):
  // the observer's call runs before the next paint. Its own changes are not
  // observed.
  const follow = (myna) => {
    const selector = classes.join(",");
    const watch = new MutationObserver((records) => {
      const added = new Set();
      for (const r of records)
        for (const n of r.addedNodes)
          if (n.nodeType == 1 && n.isConnected && (n.matches(selector) || n.querySelector(selector))) added.add(n);
      // Only the outermost of the added subtrees.
      const outer = [...added].filter((n) => {
        for (let p = n.parentNode; p; p = p.parentNode) if (added.has(p)) return false;
        return true;
      });
      if (outer.length) {
        watch.disconnect();
        try {
          for (const n of outer) myna.bind(n);
        } finally {
          watch.observe(doc, { childList: true, subtree: true });
        }
      }
    });
    if (selector) watch.observe(doc, { childList: true, subtree: true });
  };
  // What leaves the page (or an experiment's markup) as written is said in
  // the console, for its owner: a CSP without 'wasm-unsafe-eval', a
  // binding that Trusted Types refused, a value the server refused.
  const warn = (e) => console.warn("myna.js:", e?.message ?? e);
  client.catch((e) => console.warn("myna.js: the page is shown as written:", e?.message ?? e));
  const bound = client
    .then((myna) => {
      if (!late) {
        myna.on("error", (e) => e?.code == "invalid-value" && warn(e));
        myna.bind(doc);
        follow(myna);
      }
    })
    .finally(() => {
      clearTimeout(timer);
      if (!late) reveal();
    });
  // A failure only shows the page as written; the page's own handlers of
  // `window.myna` still see a failed connection.
  window.myna = bound.catch(() => {}).then(() => client);
  window.myna.catch(() => {});
})();
