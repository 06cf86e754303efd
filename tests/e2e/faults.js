// A fault proxy of the suite's own: a small HTTP server between the page and
// the real myna-server, told per test what to do with each request (pass it
// through, or answer in the server's place as a CDN, a captive portal or a
// broken connection would), and logging every request it saw with the time
// on its own clock. Fault answers carry the CORS headers a page needs to read
// them (`Access-Control-Allow-Origin: *`, `Retry-After` and `Date` exposed),
// so the SDK sees exactly what such an answer says.

import { createServer, request as httpRequest } from "node:http";

/** What a request is, from its method and path (the v2 endpoints the SDK calls). */
export function kindOf(method, path) {
  if (method === "OPTIONS") return "preflight";
  if (/^\/v2\/experiment\/[^/]+\/record$/.test(path)) return "record";
  if (/^\/v2\/experiment\/?$/.test(path)) return "search";
  if (/^\/v2\/experiment\/[^/]+$/.test(path)) return "read";
  return "other";
}

/** Answers a fault proxy can give instead of the server's. */
export const answers = {
  /** `200` with an HTML page (a captive portal, a CDN's error page). */
  html: () => ({ status: 200, headers: { "content-type": "text/html" }, body: "<!doctype html><title>Welcome</title><p>Sign in to the Wi-Fi." }),
  /** `200` with an empty body. */
  empty: () => ({ status: 200, headers: { "content-type": "application/json" }, body: "" }),
  /** A bare status with a plain text body (`408`, `502`…). */
  status: (status, headers = {}) => ({ status, headers: { "content-type": "text/plain", ...headers }, body: `HTTP ${status}\n` }),
  /** `200` JSON cut short (a connection closed mid-body, a truncating proxy). */
  truncatedJson: () => ({ status: 200, headers: { "content-type": "application/json" }, body: '{"results":[{"typename":"experiment","uu' }),
  /** `200 application/javascript` whose code is cut short, for the JSONP `callback` of the request. */
  truncatedJsonp: (entry) => ({
    status: 200,
    headers: { "content-type": "application/javascript" },
    body: `/**/${entry.query.get("callback") ?? "cb"}({"typename":"experiment","uuid":"`,
  }),
};

const CORS = {
  "access-control-allow-origin": "*",
  "access-control-expose-headers": "Retry-After, Date",
};

/**
 * Starts a proxy to `target` (a base URL) on 127.0.0.1, port 0. `rule(entry)`
 * decides for each request: `"pass"` (the default), `"hang"` (held open until
 * `dropHung()` or `answerHung(answer)`), or `{ status, headers, body }` to answer in the server's
 * place. Each entry (in `log`, in arrival order) has `at` (the proxy's
 * `Date.now()`), `method`, `path`, `query` (URLSearchParams), `kind`
 * (`kindOf`), `mode` (`Sec-Fetch-Mode`: `cors` for fetch, `no-cors` for
 * beacons and scripts), `auth` (the API key: header or parameter), `body`
 * and `action` (`"pass"`, `"hang"` or the status
 * answered).
 */
export async function faultProxy(target) {
  const log = [];
  const hung = [];
  const proxy = {
    log,
    rule: () => "pass",
    /** Entries of one kind (default: record requests), optionally for one experiment. */
    seen(kind = "record", experiment) {
      return log.filter((e) => e.kind === kind && (!experiment || e.path.includes(experiment)));
    },
    /** How many requests are held now. */
    get held() {
      return hung.length;
    },
    /** Closes every held request's connection (the page sees a network error). */
    dropHung() {
      for (const h of hung.splice(0)) h.res.socket?.destroy();
    },
    /**
     * Answers every held request with `answer` (a browser resends a request
     * whose kept-alive connection just closed, but not one answered).
     */
    answerHung(answer) {
      for (const h of hung.splice(0)) respond(h.res, answer);
    },
    /** Sends every held request on to the server, all at once. */
    passHung() {
      for (const h of hung.splice(0)) h.pass();
    },
  };
  const server = createServer((req, res) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => {
      const url = new URL(req.url, "http://proxy");
      const entry = {
        at: Date.now(),
        method: req.method,
        path: url.pathname,
        query: url.searchParams,
        kind: kindOf(req.method, url.pathname),
        mode: req.headers["sec-fetch-mode"],
        auth: req.headers.authorization ?? url.searchParams.get("apikey"),
        body: Buffer.concat(chunks).toString("utf8"),
      };
      log.push(entry);
      let action;
      try {
        action = proxy.rule(entry) ?? "pass";
      } catch {
        action = "pass";
      }
      const pass = () => {
        const headers = { ...req.headers };
        delete headers.host;
        const upstream = httpRequest(new URL(req.url, target), { method: req.method, headers }, (answer) => {
          res.writeHead(answer.statusCode, answer.headers);
          answer.pipe(res);
        });
        upstream.on("error", () => res.socket?.destroy());
        upstream.end(Buffer.concat(chunks));
      };
      if (action === "hang") {
        entry.action = "hang";
        hung.push({ res, pass });
        return;
      }
      if (action !== "pass") {
        entry.action = action.status;
        respond(res, action);
        return;
      }
      entry.action = "pass";
      pass();
    });
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  proxy.url = `http://127.0.0.1:${server.address().port}`;
  proxy.close = () => {
    proxy.dropHung();
    server.closeAllConnections?.();
    return new Promise((r) => server.close(r));
  };
  return proxy;
}

function respond(res, answer) {
  res.writeHead(answer.status, { ...CORS, date: new Date().toUTCString(), ...answer.headers });
  res.end(answer.body ?? "");
}

/**
 * A rule that gives, for requests matching `match(entry)`, the answers in
 * `plan` one after another (functions are called with the entry), then
 * passes everything through.
 */
export function inTurn(match, plan) {
  const left = [...plan];
  return (entry) => {
    if (!match(entry) || left.length === 0) return "pass";
    const next = left.shift();
    return typeof next === "function" ? next(entry) : next;
  };
}
