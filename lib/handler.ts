/**
 * The HTTP side of server mode as a pure function from `Request` to `Response`: routing, service
 * selection, status mapping and bodies. It knows nothing about sockets, TLS or the upstream; the
 * checker, the name validator and the metrics hook are injected, so it is tested with
 * `new Request(...)` alone.
 *
 * @module
 */

import { serviceEntry, shown, shownName } from "./body_text.ts";
import { type CheckResult, statusTable, worstResult } from "./status.ts";
import { listBody, listHttpStatus, type ListResult } from "./list.ts";

/** What {@link healthHandler} needs to answer health requests. */
export interface HealthHandlerOptions {
  /** `-http-listen-path`: the readiness path. */
  path: string;
  /** `-http-liveness-path`; `""` or undefined turns it off. */
  livenessPath?: string;
  /** The configured services (from `-service-name`; `[""]` when it is not set). */
  services: readonly string[];
  /**
   * True when `-service-name` was set: a `?serviceName=` naming anything but one of
   * {@link services} is refused with 403.
   */
  servicesFixed: boolean;
  /** Checks the services; one result per service, same order. Never rejects. */
  check: (services: readonly string[]) => Promise<CheckResult[]>;
  /**
   * The results background checking keeps in memory for these services, returned
   * synchronously; undefined (not all known) sends the request to {@link check}.
   */
  resultsInMemory?: (services: readonly string[]) => CheckResult[] | undefined;
  /** `-http-list-path`: answers every service `Health/List` names; `""` or undefined: off. */
  listPath?: string;
  /** Calls `Health/List` (coalesced by the caller); never rejects. Needed with {@link listPath}. */
  list?: () => Promise<ListResult>;
  /** Returns why a service name is unacceptable, or undefined when it is fine. */
  validateServiceName: (name: string) => string | undefined;
  /**
   * Called after each completed check with the path served, the results, the seconds the check
   * took and the HTTP status sent.
   */
  observe?: (
    path: string,
    results: readonly CheckResult[],
    seconds: number,
    httpStatus: number,
  ) => void;
}

/** Bodies stay well under 1 KiB (README, "Server mode"); this leaves room for the "omitted" marker. */
const BODY_BUDGET = 900;

/**
 * Builds the request handler for the health (readiness) path and, optionally, the liveness and
 * list paths. Only GET and HEAD are served there (405 otherwise); every other path is 404 with a body that is
 * not a health status.
 */
export function healthHandler(
  opts: HealthHandlerOptions,
): (req: Request) => Response | Promise<Response> {
  const path = normalizePath(opts.path);
  // The readiness path wins if both are the same (flags should reject that combination).
  const livenessPath = opts.livenessPath ? normalizePath(opts.livenessPath) : undefined;
  const configured = opts.services.length > 0 ? [...opts.services] : [""];
  const allowed = new Set(configured);

  const finish = (
    req: Request,
    liveness: boolean,
    results: CheckResult[],
    seconds: number,
  ): Response => {
    if (results.length === 0) return plain(req, 500, "internal error\n");
    const json = wantsJson(req.headers.get("accept"));
    const answer = liveness ? livenessAnswer(results, json) : readinessAnswer(results, json);
    opts.observe?.(liveness ? livenessPath! : path, results, seconds, answer.status);
    return respond(req, answer.status, answer.body, json ? "application/json" : undefined);
  };

  const list = opts.list;
  const listPath = opts.listPath && list ? normalizePath(opts.listPath) : undefined;
  /** The list path's answer; its query string is ignored (there is nothing to pick). */
  const answerList = (req: Request): Promise<Response> => {
    const started = performance.now();
    return list!().then((listed) => {
      const json = wantsJson(req.headers.get("accept"));
      const status = listHttpStatus(listed);
      // Only the path's time is observed: listed names are the upstream's, not the operator's.
      opts.observe?.(listPath!, [], (performance.now() - started) / 1000, status);
      return respond(req, status, listBody(listed, json), json ? "application/json" : undefined);
    }, () => plain(req, 500, "internal error\n"));
  };

  return (req: Request): Response | Promise<Response> => {
    const url = splitTarget(requestTarget(req));
    const liveness = url.pathname !== path && url.pathname === livenessPath;
    const listing = url.pathname !== path && !liveness && url.pathname === listPath;
    if (url.pathname !== path && !liveness && !listing) return plain(req, 404, "not found\n");
    if (req.method !== "GET" && req.method !== "HEAD") {
      return plain(req, 405, "method not allowed\n", { "allow": "GET, HEAD" });
    }
    if (listing) return answerList(req);

    const picked = pickServices(url.search, configured, allowed, opts);
    if ("error" in picked) return plain(req, picked.status, picked.error);

    // Answers from memory (background checking) come back synchronously: no promise, no clock.
    const known = opts.resultsInMemory?.(picked.services);
    if (known) return finish(req, liveness, known, 0);

    const started = performance.now();
    return opts.check(picked.services).then(
      (results) => finish(req, liveness, results, (performance.now() - started) / 1000),
      // The checker promises never to reject; if it does anyway, say nothing about why.
      () => plain(req, 500, "internal error\n"),
    );
  };
}

/**
 * The request target (path and query) of `req`. Deno builds `req.url` as `scheme://` + the Host
 * header + the target, verbatim, so a Host of `x/metrics` or `x/?serviceName=y` would move the
 * path and query: routing must use the target only. Without a Host header (HTTP/2 sends
 * `:authority`, which cannot hold `/`), the target starts at the first `/` after the authority.
 */
export function requestTarget(req: Request): string {
  const href = req.url;
  const authority = href.indexOf("://") + 3;
  const host = req.headers.get("host");
  if (host && href.startsWith(host, authority)) return href.slice(authority + host.length);
  const slash = href.indexOf("/", authority);
  return slash < 0 ? "/" : href.slice(slash);
}

/**
 * The path and query of a request target. Probers send plain paths, so `URL` parsing (the
 * costly part of a request) is skipped unless the path has something to normalise (`%`, `.`,
 * `\\`); the target is appended to a fixed origin, so `//x` stays a path.
 */
function splitTarget(target: string): { pathname: string; search: string } {
  const q = target.indexOf("?");
  const end = q < 0 ? target.length : q;
  const raw = target.slice(0, end);
  if (!raw.startsWith("/")) return { pathname: raw, search: "" }; // not origin-form: no route
  if (target.includes("#") || /[%.\\]/.test(raw)) return new URL(`http://h${target}`);
  return { pathname: raw, search: q < 0 ? "" : target.slice(q) };
}

/** Services picked for one request, or why the request is refused. */
type Picked = { services: readonly string[] } | { status: number; error: string };

/**
 * Applies `?serviceName=`: empty is no parameter, then validation (400), the configured-service
 * rule (403), selection.
 */
function pickServices(
  search: string,
  configured: readonly string[],
  allowed: ReadonlySet<string>,
  opts: HealthHandlerOptions,
): Picked {
  const values = queryValues(search, "serviceName");
  if (values === undefined) return { status: 400, error: "bad request: malformed query string\n" };
  if (values.length === 0) return { services: configured };
  if (values.length > 1) {
    return { status: 400, error: "bad request: serviceName given more than once\n" };
  }
  const name = values[0];
  // An empty value is no parameter (as grpc_health_proxy reads it): the configured services.
  if (name === "") return { services: configured };
  const invalid = opts.validateServiceName(name);
  if (invalid !== undefined) {
    return { status: 400, error: `bad request: invalid serviceName: ${shown(invalid)}\n` };
  }
  if (opts.servicesFixed && !allowed.has(name)) {
    return { status: 403, error: "forbidden: serviceName is not a configured service\n" };
  }
  return { services: [name] };
}

/**
 * The decoded values of query parameter `key`, or undefined when the query string is malformed
 * (bad percent-encoding). `URLSearchParams` would silently keep `%zz` as text; a prober sending
 * that should hear about it rather than have some other service checked.
 */
export function queryValues(search: string, key: string): string[] | undefined {
  const query = search.startsWith("?") ? search.slice(1) : search;
  const values: string[] = [];
  if (query === "") return values;
  for (const pair of query.split("&")) {
    if (pair === "") continue;
    const eq = pair.indexOf("=");
    const rawKey = eq < 0 ? pair : pair.slice(0, eq);
    const rawValue = eq < 0 ? "" : pair.slice(eq + 1);
    let k: string, v: string;
    try {
      k = decodeURIComponent(rawKey.replaceAll("+", " "));
      v = decodeURIComponent(rawValue.replaceAll("+", " "));
    } catch {
      return undefined;
    }
    if (k === key) values.push(v);
  }
  return values;
}

/** True when `application/json` is among the accepted media types (and not refused with q=0). */
export function wantsJson(accept: string | null): boolean {
  if (!accept) return false;
  return accept.split(",").some((range) => {
    const [type, ...params] = range.split(";");
    if (type.trim().toLowerCase() !== "application/json") return false;
    return !params.some((p) => /^\s*q\s*=\s*0(\.0*)?\s*$/i.test(p));
  });
}

/** Status and body of a health answer, before it becomes a `Response`. */
interface Answer {
  status: number;
  body: string;
}

/** The readiness answer: HTTP status of the worst result; one line (or entry) per service. */
function readinessAnswer(results: readonly CheckResult[], json: boolean): Answer {
  const worst = worstResult(results);
  const status = statusTable[worst.outcome].http;
  if (json) {
    if (results.length === 1) {
      return { status, body: JSON.stringify(serviceEntry(results[0])) + "\n" };
    }
    return {
      status,
      body: jsonList({ status: worst.outcome }, results.map(serviceEntry)),
    };
  }
  return {
    status,
    body: textLines(results.map((r) => line(r.service, r.outcome))),
  };
}

/**
 * The liveness answer: 200 when the upstream answered the health RPC at all for every service
 * (whatever it said), 503 when it could not be reached or did not answer in time.
 */
function livenessAnswer(results: readonly CheckResult[], json: boolean): Answer {
  const live = (r: CheckResult) => statusTable[r.outcome].answered;
  const allLive = results.every(live);
  const status = allLive ? 200 : 503;
  const word = (r: CheckResult) => live(r) ? "LIVE" : "NOT_LIVE";
  if (json) {
    const entry = (r: CheckResult) => ({
      service: shownName(r.service),
      status: word(r),
      outcome: r.outcome,
    });
    if (results.length === 1) return { status, body: JSON.stringify(entry(results[0])) + "\n" };
    return {
      status,
      body: jsonList({ status: allLive ? "LIVE" : "NOT_LIVE" }, results.map(entry)),
    };
  }
  return {
    status,
    body: textLines(
      results.map((r) => line(r.service, `${word(r)} ${r.outcome}`)),
    ),
  };
}

/** `<service> <text>`, or just `<text>` for the overall health (`""`). */
function line(service: string, text: string): string {
  return service === "" ? `${text}\n` : `${shownName(service)} ${text}\n`;
}

/** Joins lines up to the body budget; the rest is summarised as a count. */
function textLines(lines: readonly string[]): string {
  let body = "";
  for (let i = 0; i < lines.length; i++) {
    if (body.length + lines[i].length > BODY_BUDGET) {
      return body + `... ${lines.length - i} more\n`;
    }
    body += lines[i];
  }
  return body;
}

/** `{...head, "services": [...]}` with entries up to the body budget, then `"omitted": N`. */
function jsonList(head: Record<string, string>, entries: readonly object[]): string {
  const kept: object[] = [];
  let size = JSON.stringify(head).length + 40;
  for (const e of entries) {
    const n = JSON.stringify(e).length + 1;
    if (size + n > BODY_BUDGET) break;
    kept.push(e);
    size += n;
  }
  const out: Record<string, unknown> = { ...head, services: kept };
  if (kept.length < entries.length) out.omitted = entries.length - kept.length;
  return JSON.stringify(out) + "\n";
}

/** The configured path as it appears in `URL.pathname` (so "/a b" matches "/a%20b"). */
function normalizePath(p: string): string {
  return new URL(p.startsWith("/") ? p : `/${p}`, "http://h").pathname;
}

const encoder = new TextEncoder();

/** A `text/plain` answer that is not a health status (errors, 404, 405). */
function plain(
  req: Request,
  status: number,
  body: string,
  extra?: Record<string, string>,
): Response {
  return respond(req, status, body, undefined, {
    ...extra,
    "cache-control": "no-store",
    "x-content-type-options": "nosniff",
  });
}

/**
 * Builds the response; HEAD gets the same status and headers but no body. Health answers carry
 * Content-Type alone: Deno.serve has a fast path for exactly that (measured with wrk: 83k vs
 * 60k req/s with two more headers). They need no more: they have no validators, so caches do
 * not store them, and names in bodies are escaped so no markup can be sniffed.
 */
function respond(
  req: Request,
  status: number,
  body: string,
  type = "text/plain",
  extra?: Record<string, string>,
): Response {
  const headers: Record<string, string> = { ...extra, "content-type": `${type}; charset=utf-8` };
  if (req.method === "HEAD") {
    // Deno adds Content-Length to GET answers itself.
    headers["content-length"] = String(encoder.encode(body).byteLength);
    return new Response(null, { status, headers });
  }
  return new Response(body, { status, headers });
}
