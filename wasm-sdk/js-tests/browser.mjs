// Helpers for the SDK's Node-driven browser checks (the README quick start,
// the benchmark): a static server for the built package (wasm-sdk/pkg) and
// one page, and headless Chromium through playwright-core, using the
// system's Chromium (never a downloaded browser).
import { createServer } from "node:http";
import { readFile } from "node:fs/promises";
import { dirname, extname, join, normalize, resolve, sep } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

/** The repository root. */
export const repo = resolve(dirname(fileURLToPath(import.meta.url)), "../..");

const TYPES = {
  ".js": "text/javascript",
  ".wasm": "application/wasm",
  ".html": "text/html",
  ".json": "application/json",
};

/**
 * Serves `page` (HTML, or a function of the origin giving it) at `/` and
 * the built package at `/pkg/`, on a free
 * port; resolves to `{ origin, close }`. The page imports the package as a
 * browser would: `import { Myna } from "myna-sdk"` through an import map.
 */
export async function servePage(page) {
  const pkg = join(repo, "wasm-sdk", "pkg");
  const server = createServer(async (req, res) => {
    const path = new URL(req.url, "http://localhost").pathname;
    if (path === "/") {
      res.writeHead(200, { "content-type": "text/html" });
      return res.end(typeof page == "function" ? page(origin) : page);
    }
    if (path === "/favicon.ico") {
      res.writeHead(204);
      return res.end();
    }
    const file = normalize(join(pkg, path.replace(/^\/pkg\//, "")));
    if (path.startsWith("/pkg/") && file.startsWith(pkg + sep)) {
      try {
        const body = await readFile(file);
        // Any origin may load the package (a sandboxed frame's is opaque).
        res.writeHead(200, {
          "content-type": TYPES[extname(file)] ?? "application/octet-stream",
          "access-control-allow-origin": "*",
        });
        return res.end(body);
      } catch {
        // fall through to 404
      }
    }
    res.writeHead(404);
    res.end();
  });
  await new Promise((ok) => server.listen(0, "127.0.0.1", ok));
  const origin = `http://127.0.0.1:${server.address().port}`;
  return {
    origin,
    close: () => new Promise((ok) => server.close(ok)),
  };
}

/** The head of a page importing `myna-sdk` from the served package. */
export const IMPORT_MAP = `<script type="importmap">{"imports":{"myna-sdk":"/pkg/index.js"}}</script>`;

/** Headless Chromium (the system's: `CHROMIUM` or /usr/bin/chromium). */
export function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    headless: true,
    args: [
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
