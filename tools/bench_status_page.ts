/**
 * `deno task bench --status-page`: health throughput (wrk, 64 keep-alive HTTP/1.1 connections,
 * 10 s, `-check-interval=1s`, answers from memory) with nothing polling, with a plain fetch of
 * the operator page (`/status` on the metrics listener) every second, with a headless Chromium
 * loading it every second, and with the same browser loading a copy of the page served by another
 * process (what the browser itself costs on a shared 2-core machine), in rounds of alternating
 * order, and the ratios of the medians; then the page's render time at its bounds. The figures in
 * docs/performance.md ("Status page") come from it.
 *
 * The browser is one long-lived `chromium --headless` driven over its DevTools protocol
 * (`Page.navigate` once a second), so the figures include rendering the page, not starting a
 * browser each second.
 *
 * @module
 */

import type { Config } from "../lib/flags.ts";
import { RecentAnswers, StateHistory } from "../lib/status_history.ts";
import { median } from "./soak.ts";
import { statusHtml, statusJson, statusSnapshots } from "../lib/status_page.ts";

/** A started server: where it answers, how to stop it. */
interface Started {
  url: string;
  stop(): Promise<void>;
}

/** What bench.ts lends: its proxy, its load generator and its port picker. */
export interface StatusPageBench {
  proxy(flags: string[]): Promise<Started>;
  load(url: string): Promise<{ rps: number; non2xx: number }>;
  freePort(): number;
}

/** Rounds of each variant, in ABCD DCBA order so drift on a shared machine hits all alike. */
const ROUNDS = 6;

/** A headless Chromium that loads `url` once a second until stopped; counts the loads. */
async function pollingBrowser(url: string, port: number): Promise<{ stop(): Promise<number> }> {
  const browser = new Deno.Command("chromium", {
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu", // headless Chromium uses a temporary profile of its own
      `--remote-debugging-port=${port}`,
      "about:blank",
    ],
    stdout: "null",
    stderr: "null",
  }).spawn();
  let socketUrl: string | undefined;
  for (let i = 0; i < 200 && !socketUrl; i++) {
    try {
      const targets = await (await fetch(`http://127.0.0.1:${port}/json/list`)).json();
      socketUrl = targets.find((t: { type: string }) => t.type === "page")?.webSocketDebuggerUrl;
    } catch {
      // not listening yet
    }
    if (!socketUrl) await new Promise((r) => setTimeout(r, 100));
  }
  if (!socketUrl) throw new Error("chromium's DevTools endpoint did not come up");
  const socket = new WebSocket(socketUrl);
  await new Promise((resolve, reject) => {
    socket.onopen = resolve;
    socket.onerror = reject;
  });
  let loads = 0;
  socket.onmessage = (e) => {
    const msg = JSON.parse(e.data);
    if (msg.result && msg.result.frameId && !msg.result.errorText) loads++;
  };
  let id = 0;
  const navigate = () =>
    socket.send(JSON.stringify({ id: ++id, method: "Page.navigate", params: { url } }));
  navigate();
  const timer = setInterval(navigate, 1000);
  return {
    async stop() {
      clearInterval(timer);
      socket.close();
      browser.kill("SIGTERM");
      await browser.status;
      return loads;
    },
  };
}

/** Median milliseconds to render the page at its bounds: 1,000 services, 50 long changes. */
function renderCostMs(): { html: number; json: number; bytes: number } {
  let now = Date.UTC(2026, 0, 1);
  const history = new StateHistory({ now: () => now++ });
  const detail = "14 UNAVAILABLE: " + "x".repeat(600);
  for (let i = 0; i < 1000; i++) {
    history.record(`pkg${i}.Service${"y".repeat(200)}`, "SERVING", {
      service: "",
      outcome: "NOT_SERVING",
      detail,
    });
  }
  const answers = new RecentAnswers();
  answers.observe(0.001);
  const snapshot = statusSnapshots({
    config: { watch: false, checkIntervalMs: 1000, tls: true, tlsNoVerify: false } as Config,
    target: "upstream:50051",
    history,
    answers,
  });
  const time = (render: () => string) => {
    const runs: number[] = [];
    for (let i = 0; i < 50; i++) {
      const t = performance.now();
      render();
      runs.push(performance.now() - t);
    }
    return median(runs);
  };
  return {
    html: time(() => statusHtml(snapshot())),
    json: time(() => statusJson(snapshot())),
    bytes: statusHtml(snapshot()).length,
  };
}

/** One way of loading the page during a wrk run; `stop` returns the page loads it made. */
type Poller = () => Promise<{ stop(): Promise<number> }>;

/** Fetches `url` once a second (no browser: the proxy's own cost of serving the page). */
const fetchPoller = (url: string): Poller => () => {
  let loads = 0;
  const timer = setInterval(async () => {
    try {
      const res = await fetch(url);
      await res.text();
      if (res.ok) loads++;
    } catch {
      // counted as not loaded
    }
  }, 1000);
  return Promise.resolve({
    stop: () => {
      clearInterval(timer);
      return Promise.resolve(loads);
    },
  });
};

/**
 * Prints health req/s with nothing polling, with a plain fetch of `/status` every second, with
 * Chromium loading `/status` every second, and with Chromium loading a copy of the same page from
 * another process (the browser's own cost on this shared machine), and the ratios of the medians.
 */
export async function benchStatusPage(bench: StatusPageBench): Promise<void> {
  const metricsPort = bench.freePort();
  const server = await bench.proxy([
    "-check-interval=1s",
    `-metrics-http-listen-addr=127.0.0.1:${metricsPort}`,
  ]);
  const statusUrl = `http://127.0.0.1:${metricsPort}/status`;
  const copyPort = bench.freePort();
  let copy: Deno.HttpServer | undefined;
  try {
    const page = await fetch(statusUrl);
    if (!page.ok) throw new Error(`${statusUrl} answered ${page.status}`);
    const html = await page.text();
    copy = Deno.serve(
      { hostname: "127.0.0.1", port: copyPort, onListen() {} },
      () => new Response(html, { headers: { "content-type": "text/html; charset=utf-8" } }),
    );
    const variants: { label: string; poller?: Poller; rps: number[]; loads: number }[] = [
      { label: "nothing polling", rps: [], loads: 0 },
      { label: "fetch of /status every second", poller: fetchPoller(statusUrl), rps: [], loads: 0 },
      {
        label: "Chromium loading /status every second",
        poller: () => pollingBrowser(statusUrl, bench.freePort()),
        rps: [],
        loads: 0,
      },
      {
        label: "Chromium loading a copy of the page from another process every second",
        poller: () => pollingBrowser(`http://127.0.0.1:${copyPort}/`, bench.freePort()),
        rps: [],
        loads: 0,
      },
    ];
    await bench.load(server.url); // warm-up (JIT, connections)
    let non2xx = 0;
    for (let round = 0; round < ROUNDS; round++) {
      const order = round % 2 === 0 ? variants : [...variants].reverse();
      for (const v of order) {
        const poller = await v.poller?.();
        if (poller) await new Promise((r) => setTimeout(r, 2000)); // start-up is not measured
        const r = await bench.load(server.url);
        v.loads += (await poller?.stop()) ?? 0;
        v.rps.push(r.rps);
        non2xx += r.non2xx;
      }
    }
    const base = median(variants[0].rps);
    console.log(
      `status page: health req/s, -check-interval=1s, 64 connections, 10 s, ${ROUNDS} rounds ` +
        `(medians; ratio to nothing polling):`,
    );
    for (const v of variants) {
      const m = median(v.rps);
      console.log(
        `  ${v.label}: ${m.toFixed(0)} (${(m / base).toFixed(3)}; ` +
          `${v.rps.map((x) => x.toFixed(0)).join(", ")}${
            v.poller ? `; ${v.loads} page loads` : ""
          })`,
      );
    }
    const browser = median(variants[2].rps) / median(variants[3].rps);
    console.log(
      `  Chromium on /status vs on the copy: ${browser.toFixed(3)}; non-2xx answers: ${non2xx}`,
    );
    const cost = renderCostMs();
    console.log(
      `  rendering at the bounds (1,000 services, 50 changes): HTML ${cost.html.toFixed(2)} ms ` +
        `(${(cost.bytes / 1024).toFixed(0)} KiB), JSON ${cost.json.toFixed(2)} ms (medians of 50)`,
    );
  } finally {
    await copy?.shutdown();
    await server.stop();
  }
}
