/**
 * The operator page on the metrics listener: `-status-http-path` (default `/status`) in HTML (no
 * scripts, no external assets) and JSON (the path plus `.json`, or the path with
 * `Accept: application/json`). Renderers are pure functions of a {@link StatusSnapshot};
 * rendering is bounded by the history's bounds.
 *
 * @module
 */

import type { Config } from "./flags.ts";
import { statusTable } from "./status.ts";
import type {
  AnswerSummary,
  ServiceState,
  StateChangeRecord,
  StateHistory,
} from "./status_history.ts";

/** How the proxy reaches the upstream. */
export type UpstreamTls = "plaintext" | "TLS" | "TLS no-verify" | "mTLS";

/** How services are checked. */
export type CheckMode = "on demand" | "interval" | "watch";

/** Everything the page shows, at one moment. */
export interface StatusSnapshot {
  /** Milliseconds since the epoch. */
  readonly generatedAt: number;
  readonly startedAt: number;
  readonly upstream: { readonly target: string; readonly tls: UpstreamTls };
  readonly mode: CheckMode;
  /** With mode "interval": the polling interval. */
  readonly intervalMs?: number;
  readonly services: readonly ServiceState[];
  /** Newest first. */
  readonly changes: readonly StateChangeRecord[];
  readonly answers: AnswerSummary;
}

/** The TLS mode of the upstream connection the flags ask for. */
export function upstreamTls(config: Config): UpstreamTls {
  if (!config.tls) return "plaintext";
  if (config.tlsNoVerify) return "TLS no-verify";
  return config.tlsClientCert ? "mTLS" : "TLS";
}

/** The check mode the flags ask for. */
export function checkMode(config: Config): CheckMode {
  if (config.watch) return "watch";
  return config.checkIntervalMs > 0 ? "interval" : "on demand";
}

/** Builds a {@link StatusSnapshot} on demand from server mode's fixed facts and live history. */
export function statusSnapshots(opts: {
  config: Config;
  target: string;
  history: StateHistory;
  answers: { summary(): AnswerSummary };
  now?: () => number;
}): () => StatusSnapshot {
  const now = opts.now ?? Date.now;
  const startedAt = now();
  const mode = checkMode(opts.config);
  const upstream = { target: opts.target, tls: upstreamTls(opts.config) };
  return () => ({
    generatedAt: now(),
    startedAt,
    upstream,
    mode,
    ...(mode === "interval" ? { intervalMs: opts.config.checkIntervalMs } : {}),
    services: opts.history.services(),
    changes: opts.history.changes(),
    answers: opts.answers.summary(),
  });
}

const iso = (ms: number) => new Date(ms).toISOString();
const httpOf = (outcome: string) => statusTable[outcome as keyof typeof statusTable]?.http;

/** The snapshot as the JSON the page serves (timestamps in ISO 8601, UTC). */
export function statusJson(s: StatusSnapshot): string {
  return JSON.stringify(
    {
      generatedAt: iso(s.generatedAt),
      startedAt: iso(s.startedAt),
      upstream: s.upstream,
      mode: s.mode,
      ...(s.intervalMs !== undefined ? { intervalMs: s.intervalMs } : {}),
      services: s.services.map((v) => ({
        service: v.service,
        outcome: v.outcome,
        http: httpOf(v.outcome),
        since: iso(v.since),
        ...(v.detail ? { detail: v.detail } : {}),
      })),
      changes: s.changes.map((c) => ({
        at: iso(c.at),
        service: c.service,
        from: c.from ?? null,
        to: c.to,
        http: httpOf(c.to),
        ...(c.detail ? { detail: c.detail } : {}),
      })),
      answers: s.answers,
    },
    null,
    2,
  ) + "\n";
}

const ESCAPES: Record<string, string> = {
  "&": "&amp;",
  "<": "&lt;",
  ">": "&gt;",
  '"': "&quot;",
  "'": "&#39;",
};

/** `text` safe in HTML text and quoted attributes (service names come from clients). */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ESCAPES[c]);
}

/** A service name as shown: the overall health has the empty name. */
const serviceCell = (name: string) =>
  name === "" ? "<i>(overall)</i>" : `<code>${escapeHtml(name)}</code>`;
const outcomeCell = (outcome: string) =>
  `<td class="${outcome === "SERVING" ? "ok" : "bad"}">${escapeHtml(outcome)}</td>`;
const ms = (n: number) => n < 1 ? n.toFixed(3) : n.toFixed(1);

const STYLE = "body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222;background:#fff}" +
  "table{border-collapse:collapse;margin:.5em 0 1.5em}th,td{border:1px solid #ccc;" +
  "padding:.25em .6em;text-align:left;vertical-align:top}th{background:#eee}" +
  ".ok{background:#d4f4d4}.bad{background:#f8d0d0}code{word-break:break-all}" +
  "td.detail{max-width:40em;word-break:break-word;color:#555}";

/** The snapshot as a self-contained HTML page that refreshes itself every 5 seconds. */
export function statusHtml(s: StatusSnapshot): string {
  const mode = s.mode === "interval" && s.intervalMs !== undefined
    ? `interval (${s.intervalMs} ms)`
    : s.mode;
  const a = s.answers;
  const latency = a.latencyMs
    ? `mean ${ms(a.latencyMs.mean)} ms, p50 ≤ ${ms(a.latencyMs.p50)} ms, ` +
      `p99 ≤ ${ms(a.latencyMs.p99)} ms`
    : "no answers";
  const services = s.services.map((v) =>
    `<tr><td>${serviceCell(v.service)}</td>${outcomeCell(v.outcome)}<td>${httpOf(v.outcome)}` +
    `</td><td>${iso(v.since)}</td></tr>`
  );
  const changes = s.changes.map((c) =>
    `<tr><td>${iso(c.at)}</td><td>${serviceCell(c.service)}</td><td>${
      escapeHtml(c.from ?? "none")
    }</td>${outcomeCell(c.to)}<td class="detail">${escapeHtml(c.detail ?? "")}</td></tr>`
  );
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="refresh" content="5">
<title>grpc_health_proxy status</title>
<style>${STYLE}</style>
</head>
<body>
<h1>grpc_health_proxy status</h1>
<table>
<tr><th>upstream</th><td><code>${escapeHtml(s.upstream.target)}</code> (${s.upstream.tls})</td></tr>
<tr><th>mode</th><td>${escapeHtml(mode)}</td></tr>
<tr><th>health answers</th><td>${
    a.answersPerSecond.toFixed(1)
  }/s over the last ${a.windowSeconds} s; ${latency}</td></tr>
<tr><th>started</th><td>${iso(s.startedAt)}</td></tr>
<tr><th>generated</th><td>${iso(s.generatedAt)}</td></tr>
</table>
<h2>Services (${s.services.length})</h2>
<table>
<tr><th>service</th><th>outcome</th><th>HTTP</th><th>since</th></tr>
${services.join("\n") || '<tr><td colspan="4">none checked yet</td></tr>'}
</table>
<h2>Last ${s.changes.length} state changes</h2>
<table>
<tr><th>at</th><th>service</th><th>from</th><th>to</th><th>detail</th></tr>
${changes.join("\n") || '<tr><td colspan="5">none yet</td></tr>'}
</table>
</body>
</html>
`;
}

/** Headers of both renderings: never cached, never framed, no scripts or outside fetches. */
const PAGE_HEADERS = {
  "cache-control": "no-store",
  "vary": "accept",
  "x-content-type-options": "nosniff",
  "content-security-policy":
    "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'",
};

/**
 * Serves the page for GET/HEAD on `paths.status` (HTML, or JSON when the client accepts JSON
 * and not HTML) and on it plus `.json` (JSON); any other request goes to `next` (the metrics
 * handler). The metrics path, when it is one of these, wins; an empty `paths.status` serves
 * no page.
 */
export function withStatusPage(
  snapshot: () => StatusSnapshot,
  paths: { status: string; metrics: string },
  next: (req: Request) => Promise<Response>,
): (req: Request) => Promise<Response> {
  if (paths.status === "") return next;
  const html = paths.status;
  const json = `${paths.status}.json`;
  return (req) => {
    const path = new URL(req.url).pathname;
    if (path === paths.metrics || (path !== html && path !== json)) return next(req);
    const head = req.method === "HEAD";
    if (req.method !== "GET" && !head) {
      return Promise.resolve(
        new Response("method not allowed\n", {
          status: 405,
          headers: { "content-type": "text/plain; charset=utf-8", "allow": "GET, HEAD" },
        }),
      );
    }
    const accept = req.headers.get("accept") ?? "";
    const asJson = path === json ||
      (accept.includes("application/json") && !accept.includes("text/html"));
    const body = asJson ? statusJson(snapshot()) : statusHtml(snapshot());
    return Promise.resolve(
      new Response(head ? null : body, {
        headers: {
          ...PAGE_HEADERS,
          "content-type": asJson ? "application/json" : "text/html; charset=utf-8",
        },
      }),
    );
  };
}
