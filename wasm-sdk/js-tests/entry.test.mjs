// The package entry (pkg/index.js) on a page in headless Chromium, no
// server: the wasm is requested as the module is evaluated (before
// `Myna.connect`); a failed load is no unhandled rejection, rejects the
// `connect` waiting for it, and the next `connect` loads again; connecting
// with a snapshot and the first `suggest` do no network and touch only the
// visitor's sticky state in storage, the listeners, timer and queue
// adoption waiting for a later task; `reward` takes numbers only; in a
// sandboxed frame (Web Locks and localStorage denied) a flush still runs;
// a released handle throws a MynaError; under Trusted Types the JSONP
// transport is refused at connect; without WebAssembly connect rejects
// with `unsupported`.
// Run by scripts/test-sdk.
import { test } from "node:test";
import assert from "node:assert/strict";
import { IMPORT_MAP, launch, servePage } from "./browser.mjs";

const uuid = "6f1c1a52-3b0e-4d8e-9f39-0c6f5c1d2a11";

// The page counts fetches, storage calls, lock requests and timers from
// the moment `connect` is called, and unhandled rejections all along.
const page = `<!doctype html><html><head>${IMPORT_MAP}
<script>
  window.rejections = [];
  addEventListener("unhandledrejection", (e) => rejections.push(String(e.reason)));
  window.calls = null;
  const count = (obj, name) => {
    const f = obj[name];
    obj[name] = function (...args) {
      if (calls) calls.push(name + (typeof args[0] == "string" ? " " + args[0] : ""));
      return f.apply(this, args);
    };
  };
  count(window, "fetch");
  count(window, "setTimeout");
  count(window, "setInterval");
  count(window, "addEventListener");
  for (const m of ["getItem", "setItem", "removeItem", "key"]) count(Storage.prototype, m);
  if (navigator.locks) count(navigator.locks, "request");
</script></head><body><script type="module">
  import { Myna, MynaError } from "myna-sdk";
  window.Myna = Myna;
  window.MynaError = MynaError;
</script></body></html>`;

const snapshot = {
  typename: "experiment",
  subtype: "summary",
  uuid,
  name: "entry",
  visibility: "published",
  variants: { a: { name: "a", weight: 1, settings: {} } },
};

async function withPage(failures, check) {
  const site = await servePage(page);
  const browser = await launch();
  try {
    const tab = await browser.newPage();
    const wasm = [];
    let failing = failures;
    await tab.route("**/*.wasm", (route) => {
      wasm.push(Date.now());
      return failing-- > 0 ? route.abort() : route.continue();
    });
    await tab.goto(site.origin);
    await tab.waitForFunction(() => window.Myna);
    await check(tab, wasm);
  } finally {
    await browser.close();
    await site.close();
  }
}

const connect = (tab) =>
  tab.evaluate(
    async ([snapshot]) => {
      try {
        await Myna.connect({ apiRoot: "http://127.0.0.1:9", apiKey: "k", storageKey: "entry", experiments: [snapshot] });
        return "connected";
      } catch (e) {
        return e instanceof MynaError && e.code == "network" && /wasm could not be loaded/.test(e.message)
          ? "rejected"
          : `rejected with ${e}`;
      }
    },
    [snapshot],
  );

test("the wasm loads as the module is evaluated; a failed load retries at the next connect", async () => {
  await withPage(2, async (tab, wasm) => {
    assert.equal(wasm.length, 1, "requested before connect is called");
    await tab.waitForTimeout(200);
    assert.deepEqual(await tab.evaluate(() => rejections), [], "no unhandled rejection: nobody connected");
    assert.equal(await connect(tab), "rejected", "this connect's load failed too");
    assert.equal(wasm.length, 2);
    assert.equal(await connect(tab), "connected", "the next one loads again");
    assert.equal(wasm.length, 3);
    assert.deepEqual(await tab.evaluate(() => rejections), []);
  });
});

test("without WebAssembly connect rejects with `unsupported`, every time, saying why", async () => {
  const site = await servePage(page);
  const browser = await launch();
  try {
    const tab = await browser.newPage();
    // As in a browser that runs no WebAssembly (iOS Lockdown Mode, a
    // hardened profile): the global is gone before the SDK loads.
    await tab.addInitScript(() => delete globalThis.WebAssembly);
    await tab.goto(site.origin);
    await tab.waitForFunction(() => window.Myna);
    const tries = await tab.evaluate(async ([snapshot]) => {
      const seen = [];
      for (let i = 0; i < 2; i++) {
        try {
          await Myna.connect({ apiRoot: "http://127.0.0.1:9", apiKey: "k", experiments: [snapshot] });
          seen.push("connected");
        } catch (e) {
          seen.push([e instanceof MynaError, e.code, /no WebAssembly here/.test(e.message)]);
        }
      }
      return seen;
    }, [snapshot]);
    assert.deepEqual(tries, [
      [true, "unsupported", true],
      [true, "unsupported", true],
    ]);
    assert.deepEqual(await tab.evaluate(() => rejections), [], "no unhandled rejection");
  } finally {
    await browser.close();
    await site.close();
  }
});

test("connecting with a snapshot and the first suggest touch only the sticky state", async () => {
  await withPage(0, async (tab) => {
    const seen = await tab.evaluate(async ([snapshot, uuid]) => {
      calls = [];
      const myna = await Myna.connect({
        apiRoot: "http://127.0.0.1:9",
        apiKey: "k",
        storageKey: "entry",
        experiments: [snapshot],
      });
      const variant = myna.experiment(uuid).suggest().id;
      const first = [...calls];
      await new Promise((ok) => setTimeout(ok, 50));
      return { variant, first, later: calls.slice(first.length) };
    }, [snapshot, uuid]);
    assert.equal(seen.variant, "a");
    // (A timeout is set: the later task that starts the rest.)
    const first = seen.first.filter((c) => c != "setTimeout");
    assert.deepEqual(first, [`getItem entry:s:${uuid}`], "no network, no timer, no listener, no scan");
    assert.ok(seen.later.includes(`setItem entry:s:${uuid}`), `the view's write follows: ${seen.later}`);
    assert.ok(seen.later.includes("setInterval"), "then the timer and listeners start");
  });
});

test("reward takes numbers only: anything else throws invalid-amount and uses up nothing", async () => {
  await withPage(0, async (tab) => {
    const seen = await tab.evaluate(async ([snapshot, uuid]) => {
      const myna = await Myna.connect({ apiRoot: "http://127.0.0.1:9", apiKey: "k", storageKey: "amounts", experiments: [snapshot] });
      const expt = myna.experiment(uuid);
      expt.view("a");
      const codes = [];
      for (const bad of ["0.5", [], true, {}, "1"]) {
        try {
          expt.reward(bad);
          codes.push("accepted " + JSON.stringify(bad));
        } catch (e) {
          codes.push(e instanceof MynaError ? `${e.code} ${e.path}` : String(e));
        }
      }
      const queued = myna.queued;
      const rewarded = expt.reward(0.5);
      myna.close();
      return { codes, queued, rewarded };
    }, [snapshot, uuid]);
    assert.deepEqual(seen.codes, Array(5).fill("invalid-amount amount"));
    assert.equal(seen.queued, 1, "only the view was queued");
    assert.equal(seen.rewarded, true, "the bad amounts did not use up the reward");
  });
});

test("a released handle throws a MynaError, and releasing it again does nothing", async () => {
  await withPage(0, async (tab) => {
    const seen = await tab.evaluate(async ([snapshot, uuid]) => {
      const myna = await Myna.connect({ apiRoot: "http://127.0.0.1:9", apiKey: "k", storageKey: "freed", experiments: [snapshot] });
      const expt = myna.experiment(uuid);
      const kept = myna.experiment(uuid);
      expt.free();
      const out = [];
      const attempt = (f) => {
        try {
          f();
          out.push("ok");
        } catch (e) {
          out.push(e instanceof MynaError ? e.code : String(e));
        }
      };
      attempt(() => expt.suggest());
      attempt(() => expt.free());
      attempt(() => kept.suggest());
      myna.close();
      myna.free();
      attempt(() => myna.experiment(uuid));
      attempt(() => myna.queued);
      attempt(() => myna.free());
      return out;
    }, [snapshot, uuid]);
    assert.deepEqual(seen, ["invalid-value", "ok", "ok", "invalid-value", "invalid-value", "ok"]);
  });
});

test("releasing the last handles in the task that queued events (free, Symbol.dispose) stores them released: the next client sends them", async () => {
  await withPage(0, async (tab) => {
    const seen = await tab.evaluate(async ([snapshot, uuid]) => {
      const out = [];
      for (const release of ["free", "dispose", "free a tick later"]) {
        const options = { apiRoot: "http://127.0.0.1:9", apiKey: "k", storageKey: release, experiments: [snapshot] };
        const myna = await Myna.connect(options);
        const expt = myna.experiment(uuid);
        expt.suggest();
        expt.reward(1);
        if (release == "free a tick later") await new Promise((r) => setTimeout(r, 0));
        if (release == "dispose") {
          expt[Symbol.dispose]();
          myna[Symbol.dispose]();
        } else {
          expt.free();
          myna.free();
        }
        const next = await Myna.connect(options);
        await new Promise((r) => setTimeout(r, 50));
        out.push(`${release}: ${next.queued}`);
        next.close();
      }
      return out;
    }, [snapshot, uuid]);
    assert.deepEqual(seen, ["free: 2", "dispose: 2", "free a tick later: 2"]);
  });
});

test("in a sandboxed frame (no Web Locks, no localStorage) a flush runs instead of waiting forever", async () => {
  await withPage(0, async (tab) => {
    // The frame's origin is opaque (its module and wasm requests are CORS
    // requests, which servePage allows); its record request is answered
    // here (aborted: the flush must try it and reject, not hang on the
    // flush lock).
    const records = [];
    await tab.route("http://127.0.0.1:9/**", (route) => {
      records.push(route.request().url());
      return route.abort();
    });
    const origin = new URL(tab.url()).origin;
    const frame = `<!doctype html><html><head>${IMPORT_MAP.replace('"/pkg/', `"${origin}/pkg/`)}</head><body>
<script>
  addEventListener("unhandledrejection", (e) => parent.postMessage("unhandled " + e.reason, "*"));
  addEventListener("error", (e) => parent.postMessage("error " + e.message, "*"));
</script>
<script type="module">
  import { Myna } from "myna-sdk";
  const myna = await Myna.connect({ apiRoot: "http://127.0.0.1:9", apiKey: "k", experiments: [${JSON.stringify(snapshot)}] });
  myna.experiment(${JSON.stringify(uuid)}).suggest();
  const flushed = myna.flush().then(() => "sent", (e) => "rejected " + e.code);
  parent.postMessage(await flushed, "*");
</script></body></html>`;
    const seen = await tab.evaluate(
      (frame) =>
        new Promise((ok) => {
          const said = [];
          addEventListener("message", (e) => {
            said.push(e.data);
            if (!String(e.data).startsWith("unhandled")) ok(said);
          });
          setTimeout(() => ok([...said, "flush still waiting after 15 s"]), 15000);
          const f = document.createElement("iframe");
          f.sandbox = "allow-scripts";
          f.srcdoc = frame;
          document.body.append(f);
        }),
      frame,
    );
    assert.deepEqual(seen, ["rejected network"], "the flush tried and told, with no unhandled rejection");
    assert.equal(records.length, 1, `one record request: ${records}`);
  });
});

test("a page's flush while a send is in flight resolves with what that send confirmed", async () => {
  await withPage(0, async (tab) => {
    let posted, release;
    const post = new Promise((ok) => (posted = ok));
    const held = new Promise((ok) => (release = ok));
    await tab.route("http://127.0.0.1:9/**", async (route) => {
      const cors = { "access-control-allow-origin": "*", "access-control-allow-headers": "*" };
      if (route.request().method() == "OPTIONS") return route.fulfill({ status: 204, headers: cors });
      posted();
      await held;
      const body = JSON.stringify(snapshot);
      return route.fulfill({ status: 200, headers: { ...cors, "content-type": "application/json" }, body });
    });
    // Batch size 1: the view starts a send by itself.
    await tab.evaluate(
      async ([snapshot, uuid]) => {
        const options = { apiRoot: "http://127.0.0.1:9", apiKey: "k", storageKey: "inflight", batchSize: 1 };
        window.client = await Myna.connect({ ...options, experiments: [snapshot] });
        client.experiment(uuid).suggest();
      },
      [snapshot, uuid],
    );
    await post;
    await tab.evaluate(() => {
      window.flushed = client.flush();
    });
    release();
    assert.deepEqual(await tab.evaluate(() => window.flushed), { sent: 1, dropped: 0, requeued: 0 });
  });
});

test("a search answer that is not Myna's rejects connect at the form's path, with no server status", async () => {
  await withPage(0, async (tab) => {
    await tab.route("http://127.0.0.1:9/**", (route) => {
      const cors = { "access-control-allow-origin": "*", "access-control-allow-headers": "*" };
      if (route.request().method() == "OPTIONS") return route.fulfill({ status: 204, headers: cors });
      const body = JSON.stringify({ results: [{ foo: 1 }] });
      return route.fulfill({ status: 200, headers: { ...cors, "content-type": "application/json" }, body });
    });
    const error = await tab.evaluate(() =>
      Myna.connect({ apiRoot: "http://127.0.0.1:9", apiKey: "k", storageKey: "foreign" }).then(
        () => "connected",
        (e) => [e.code, e.path, e.status ?? null],
      ),
    );
    assert.deepEqual(error, ["invalid-type", "results[0].typename", null]);
  });
});

test("under Trusted Types the JSONP transport is refused at connect, saying why; POST connects", async () => {
  const tt = `<meta http-equiv="Content-Security-Policy" content="require-trusted-types-for 'script'; trusted-types 'none'">`;
  const site = await servePage(page.replace("<head>", "<head>" + tt));
  const browser = await launch();
  try {
    const tab = await browser.newPage();
    await tab.goto(site.origin);
    await tab.waitForFunction(() => window.Myna);
    const seen = await tab.evaluate(async (snapshot) => {
      const connect = (transport) =>
        Myna.connect({ apiRoot: "http://127.0.0.1:9", apiKey: "k", transport, experiments: [snapshot] }).then(
          (m) => (m.close(), "connected"),
          (e) => [e instanceof MynaError, e.code, e.path, /Trusted Types/.test(e.message)],
        );
      return [await connect("jsonp"), await connect("post")];
    }, snapshot);
    assert.deepEqual(seen, [[true, "invalid-value", "transport", true], "connected"]);
  } finally {
    await browser.close();
    await site.close();
  }
});
