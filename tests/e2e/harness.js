// The end-to-end harness: the real myna-server binary (port 0, a temporary
// SQLite file), a tiny static server for the test pages and the built
// `myna-sdk` package (another port, so the SDK talks cross-origin as on a
// real site), owner calls to the HTTP API, and headless Chromium driven by
// playwright-core. Every wait polls a condition with a generous deadline:
// the suite runs on loaded 2-core CI machines and asserts no timings.

import { spawn, execFileSync } from "node:child_process";
import { createServer } from "node:http";
import { mkdtempSync, readFileSync, realpathSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, extname, join, normalize, resolve, sep } from "node:path";
import { fileURLToPath } from "node:url";
import { createInterface } from "node:readline";
import { chromium } from "playwright-core";

const here = dirname(fileURLToPath(import.meta.url));
const repo = resolve(here, "../..");

/** The owner account every test server starts with. */
export const OWNER = { email: "owner@example.com", password: "e2e-owner-password" };

/** How long any one condition may take before a test fails (generous: CI is slow). */
export const PATIENCE_MS = 120_000;

// ---- Waiting ----------------------------------------------------------------

/** Resolves after `ms` milliseconds (only between polls, never as a wait in itself). */
export const pause = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * Polls `probe` until it returns a truthy value (returned), or fails after
 * `timeoutMs` with `what` and the last value seen.
 */
export async function until(what, probe, { timeoutMs = PATIENCE_MS, everyMs = 100 } = {}) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      last = await probe();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) {
      const seen = last instanceof Error ? last.stack : JSON.stringify(last);
      throw new Error(`timed out waiting for ${what}; last seen: ${seen}`);
    }
    await pause(everyMs);
  }
}

// ---- The server -----------------------------------------------------------

let binary;

/**
 * The myna-server executable: `MYNA_SERVER_BIN` if set, else what
 * `cargo build -p myna-server` produces (wherever CARGO_TARGET_DIR puts it).
 */
export function serverBinary() {
  if (binary) return binary;
  if (process.env.MYNA_SERVER_BIN) return (binary = process.env.MYNA_SERVER_BIN);
  const out = execFileSync(
    "cargo",
    ["build", "--quiet", "-p", "myna-server", "--bin", "myna-server", "--message-format=json"],
    { cwd: repo, encoding: "utf8", maxBuffer: 64 << 20, stdio: ["ignore", "pipe", "inherit"] },
  );
  for (const line of out.split("\n")) {
    if (!line.startsWith("{")) continue;
    const msg = JSON.parse(line);
    if (msg.reason === "compiler-artifact" && msg.target?.name === "myna-server" && msg.executable) {
      binary = msg.executable;
    }
  }
  if (!binary) throw new Error("cargo build -p myna-server produced no myna-server executable");
  return binary;
}

/** A running myna-server process on its own temporary database. */
export class MynaServer {
  /**
   * Starts a server on a fresh temporary SQLite file and a free port, with
   * `env` added to its environment (e.g. `MYNA_RECORD_LIMIT`).
   */
  static async start(env = {}) {
    const dir = mkdtempSync(join(tmpdir(), "myna-e2e-"));
    const server = new MynaServer(join(dir, "myna.db"), dir, env);
    await server.#spawn("127.0.0.1:0");
    return server;
  }

  constructor(database, dir, env = {}) {
    this.database = database;
    this.dir = dir;
    this.env = env;
    /** Everything the server logged (shown when a test fails). */
    this.log = [];
  }

  async #spawn(listen) {
    const child = spawn(serverBinary(), ["serve", "--listen", listen, "--database", this.database], {
      env: {
        ...process.env,
        RUST_LOG: "info",
        MYNA_ADMIN_EMAIL: OWNER.email,
        MYNA_ADMIN_PASSWORD: OWNER.password,
        ...this.env,
      },
      stdio: ["ignore", "pipe", "pipe"],
    });
    this.child = child;
    const exited = new Promise((r) => child.once("exit", (code, signal) => r({ code, signal })));
    this.exited = exited;
    const address = new Promise((found, failed) => {
      for (const stream of [child.stdout, child.stderr]) {
        createInterface({ input: stream }).on("line", (line) => {
          this.log.push(line);
          const m = /listening on http:\/\/(\S+)/.exec(line);
          if (m) found(m[1]);
        });
      }
      exited.then(({ code, signal }) =>
        failed(new Error(`myna-server exited (code ${code}, signal ${signal}):\n${this.log.join("\n")}`)),
      );
    });
    let timer;
    const timeout = new Promise((_, failed) => {
      timer = setTimeout(
        () => failed(new Error(`myna-server did not say where it listens:\n${this.log.join("\n")}`)),
        PATIENCE_MS,
      );
    });
    const addr = await Promise.race([address, timeout]).finally(() => clearTimeout(timer));
    this.address = addr;
    this.url = `http://${addr}`;
  }

  /** Stops the server: SIGTERM (graceful) or SIGKILL (a crash); resolves once it exited. */
  async stop(signal = "SIGTERM") {
    if (!this.child || this.child.exitCode !== null || this.child.signalCode !== null) return;
    this.child.kill(signal);
    const { code } = await this.exited;
    if (signal === "SIGTERM" && code !== 0) {
      throw new Error(`myna-server exited with ${code} on SIGTERM:\n${this.log.join("\n")}`);
    }
  }

  /** Starts the server again on the same address and database. */
  async restart() {
    // The port was just released; binding it again may briefly fail.
    await until(`myna-server to listen on ${this.address} again`, async () => {
      try {
        await this.#spawn(this.address);
        return true;
      } catch (e) {
        if (!/cannot listen/.test(e.message)) throw e;
        return false;
      }
    });
  }

  /** Stops the server and removes its database. */
  async dispose() {
    await this.stop("SIGTERM").catch(() => this.stop("SIGKILL"));
    rmSync(this.dir, { recursive: true, force: true });
  }
}

// ---- The HTTP API as the site owner -------------------------------------------

/** Owner (Basic) and API key calls to a server. */
export class Api {
  constructor(server) {
    this.server = server;
    this.basic = "Basic " + Buffer.from(`${OWNER.email}:${OWNER.password}`).toString("base64");
  }

  /** A call; resolves to `{ status, body }` (body parsed when JSON). */
  async call(method, path, { body, auth = this.basic } = {}) {
    const headers = {};
    if (auth) headers.authorization = auth;
    if (body !== undefined) headers["content-type"] = "application/json";
    const res = await fetch(this.server.url + path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    let parsed = text;
    try {
      parsed = JSON.parse(text);
    } catch {
      // not JSON: kept as text
    }
    return { status: res.status, body: parsed };
  }

  /** A call that must succeed (2xx); resolves to the body. */
  async ok(method, path, options) {
    const { status, body } = await this.call(method, path, options);
    if (status < 200 || status > 299) {
      throw new Error(`${method} ${path} answered ${status}: ${JSON.stringify(body)}`);
    }
    return body;
  }

  /** Creates a published experiment; `variants` maps id → { name, settings }. */
  createExperiment(name, variants, visibility = "published") {
    return this.ok("POST", "/v2/experiment", { body: { name, visibility, variants } });
  }

  /** Creates an API key; resolves to its uuid. */
  async createApiKey(name = "e2e") {
    return (await this.ok("POST", "/v2/apikey", { body: { name } })).uuid;
  }

  /** The complete read form (views, totalReward, weights). */
  read(uuid) {
    return this.ok("GET", `/v2/experiment/${uuid}`);
  }

  /** The summary read form an API key gets: the weights a page is served. */
  readAsPage(uuid, apiKey) {
    return this.ok("GET", `/v2/experiment/${uuid}`, { auth: `ApiKey ${apiKey}` });
  }

  /** Changes an experiment (e.g. `{ visibility: "archived" }`). */
  update(uuid, body) {
    return this.ok("PUT", `/v2/experiment/${uuid}`, { body });
  }

  /** `{ variant: { views, totalReward } }` from the complete read form. */
  async counts(uuid) {
    const form = await this.read(uuid);
    return Object.fromEntries(
      Object.entries(form.variants).map(([id, v]) => [id, { views: v.views, totalReward: v.totalReward }]),
    );
  }

  /**
   * Polls the read endpoint until the counts equal `expected` exactly (they
   * may lag while events travel); fails with both on timeout.
   */
  async countsReach(uuid, expected, timeoutMs = PATIENCE_MS) {
    let last;
    try {
      return await until(
        "the server's counts",
        async () => {
          last = await this.counts(uuid);
          return sameCounts(last, expected) && last;
        },
        { timeoutMs, everyMs: 200 },
      );
    } catch {
      throw new Error(
        `the server's counts never equalled what the pages did:\n` +
          `  server: ${JSON.stringify(last)}\n  pages:  ${JSON.stringify(expected)}`,
      );
    }
  }
}

/** Whether two `{ variant: { views, totalReward } }` maps are equal (rewards to 1e-9). */
export function sameCounts(a, b) {
  const ids = new Set([...Object.keys(a), ...Object.keys(b)]);
  for (const id of ids) {
    const x = a[id] ?? { views: 0, totalReward: 0 };
    const y = b[id] ?? { views: 0, totalReward: 0 };
    if (x.views !== y.views || Math.abs(x.totalReward - y.totalReward) > 1e-9) return false;
  }
  return true;
}

/** Zero counts for these variant ids. */
export function zeroCounts(ids) {
  return Object.fromEntries(ids.map((id) => [id, { views: 0, totalReward: 0 }]));
}

// ---- The web site ---------------------------------------------------------------

const TYPES = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".mjs": "text/javascript; charset=utf-8",
  ".json": "application/json",
  ".wasm": "application/wasm",
  ".css": "text/css; charset=utf-8",
  ".ts": "text/plain; charset=utf-8",
};

/**
 * Where the installed `myna-sdk` package lives (the built wasm-sdk/pkg), or
 * `MYNA_SDK_DIR` to try another build of it.
 */
export function sdkDir() {
  const dir = realpathSync(process.env.MYNA_SDK_DIR || join(here, "..", "node_modules", "myna-sdk"));
  try {
    statSync(join(dir, "index.js"));
  } catch {
    throw new Error(`the myna-sdk package is not built at ${dir}: run scripts/build-sdk`);
  }
  return dir;
}

/**
 * Serves `roots` (URL prefix → directory) over HTTP on 127.0.0.1, port 0;
 * resolves to `{ url, close }`. Nothing is cached.
 */
export async function staticSite(roots) {
  const server = createServer((req, res) => {
    const path = decodeURIComponent(new URL(req.url, "http://x").pathname);
    for (const [prefix, dir] of Object.entries(roots)) {
      if (!path.startsWith(prefix)) continue;
      let file = normalize(join(dir, path.slice(prefix.length)));
      if (!file.startsWith(dir + sep) && file !== dir) break;
      if (file.endsWith(sep) || file === dir) file = join(file, "index.html");
      try {
        const body = readFileSync(file);
        res.writeHead(200, {
          "content-type": TYPES[extname(file)] ?? "application/octet-stream",
          "cache-control": "no-store",
        });
        res.end(body);
        return;
      } catch {
        break;
      }
    }
    res.writeHead(404, { "content-type": "text/plain" });
    res.end("not found\n");
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  const { port } = server.address();
  return {
    url: `http://127.0.0.1:${port}`,
    close: () => new Promise((r) => server.close(r)),
  };
}

/** The test site: the pages under e2e/pages at `/`, the SDK package at `/sdk/`. */
export function testSite() {
  return staticSite({ "/sdk/": sdkDir(), "/": join(here, "pages") });
}

// ---- The browser ----------------------------------------------------------------

/** Headless Chromium from the system (never a downloaded browser). */
export function launchBrowser() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM_PATH || "/usr/bin/chromium",
    headless: true,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
}

/**
 * Runs `work(i)` for i in [0, n) with at most `width` running at once;
 * resolves to the results in order. The first failure fails the whole run.
 */
export async function pool(n, width, work) {
  const results = new Array(n);
  let next = 0;
  const lane = async () => {
    while (next < n) {
      const i = next++;
      results[i] = await work(i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(width, n) }, lane));
  return results;
}

/** A small seeded generator (mulberry32): the same seed, the same visitors. */
export function seeded(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// ---- A whole world: server, owner API, site, browser ------------------------------

/**
 * Starts a server (with `serverEnv` added to its environment), the test
 * site and a browser; `close()` stops them all.
 */
export async function world({ serverEnv } = {}) {
  const server = await MynaServer.start(serverEnv);
  const api = new Api(server);
  const site = await testSite();
  const browser = await launchBrowser();
  return {
    server,
    api,
    site,
    browser,
    async close() {
      await browser.close().catch(() => {});
      await site.close();
      await server.dispose();
    },
  };
}

/** The landing page's URL for these parameters (see pages/landing.js). */
export function landingUrl(site, params) {
  const query = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined) query.set(k, typeof v === "string" ? v : JSON.stringify(v));
  }
  return `${site.url}/landing.html?${query}`;
}

/** Loads `url` in `page` and resolves to the page's `visit` once it decided. */
export async function load(page, url) {
  await page.goto(url);
  return page.evaluate(() => window.ready);
}

/** Reloads `page` and resolves to the new page's `visit`. */
export async function reload(page) {
  await page.reload();
  return page.evaluate(() => window.ready);
}

/** The page's `visit` record as it is now. */
export function visitOf(page) {
  return page.evaluate(() => window.visit);
}

/**
 * Flushes the page's SDK until its queue is empty and confirmed (a failed
 * attempt, e.g. while the server restarts, is retried); resolves to the last
 * flush result.
 */
export function drain(page, what = "the page's queue to drain") {
  return until(what, async () => {
    const r = await page.evaluate(() => window.flushNow());
    return r.ok && r.queued === 0 && r;
  });
}

// ---- The landing page experiment ------------------------------------------------------

/** Two headlines for the landing page (pages/landing.js shows `settings.headline`). */
export const HEADLINES = {
  plain: { name: "Plain", settings: { headline: "A/B tests you host yourself" } },
  bold: { name: "Bold", settings: { headline: "Ship the better page, automatically" } },
};

/**
 * Adds what one page load did (its `visit`: the variant it showed, the views
 * and rewards it queued) to `counts` (`{ variant: { views, totalReward } }`).
 */
export function tally(counts, visit) {
  if (!visit.variant) return counts;
  const c = (counts[visit.variant] ??= { views: 0, totalReward: 0 });
  c.views += visit.views;
  c.totalReward += visit.rewards; // the page rewards with the default amount, 1
  return counts;
}
