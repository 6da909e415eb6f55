/**
 * Prometheus metrics with the names and labels of grpc_health_proxy, kept in a private
 * prom-client registry (no global state), plus the process metrics that work under Deno.
 *
 * @module
 */

import client from "prom-client";
import { type CheckResult, type Outcome, statusTable } from "./status.ts";

/** Label value every service name outside the known set collapses to, so series stay bounded. */
export const OTHER_SERVICE = "other";

/** The metrics server mode records. */
export interface HealthMetrics {
  /**
   * Records one answered health request: `grpc_health_check_seconds{path}`, and per result
   * `grpc_health_check_service_duration_seconds{service_name}` (the whole check's duration:
   * services are checked together) and `grpc_health_check_service_requests{code,service_name}`
   * with `code` as grpc_health_proxy spells the outcome (the status table's `metricCode`).
   */
  observe(path: string, results: readonly CheckResult[], seconds: number): void;
  /** Counts a background-check state change into `status` (an outcome name). */
  stateChange(service: string, status: string): void;
  /** The exposition in Prometheus text format. */
  render(): Promise<{ contentType: string; body: string }>;
}

/** Options for {@link createHealthMetrics}. */
export interface HealthMetricsOptions {
  /** Service names used verbatim as label values; any other becomes {@link OTHER_SERVICE}. */
  knownServices: readonly string[];
  /** Registers process metrics (default true). */
  processMetrics?: boolean;
}

/**
 * The prom-client default collectors whose values are real under Deno. Left out: the
 * `/proc/self/*` readers (`process_resident_memory_bytes` and friends, `process_open_fds`,
 * `process_max_fds`), which Deno only allows with `--allow-all` and so report 0;
 * `nodejs_eventloop_lag_{min,max,mean,...}` (Deno's `monitorEventLoopDelay` records nothing),
 * `nodejs_gc_duration_seconds` (no GC events), `nodejs_active_*` (mostly empty), and
 * `nodejs_version_info` (would report Deno's Node-compat version as if it were Node's).
 */
const DEFAULT_METRICS_KEPT = [
  "process_cpu_user_seconds_total",
  "process_cpu_system_seconds_total",
  "process_cpu_seconds_total",
  "process_start_time_seconds",
  "nodejs_eventloop_lag_seconds",
  "nodejs_heap_size_total_bytes",
  "nodejs_heap_size_used_bytes",
  "nodejs_external_memory_bytes",
  "nodejs_heap_space_size_total_bytes",
  "nodejs_heap_space_size_used_bytes",
  "nodejs_heap_space_size_available_bytes",
];

/** Creates the metrics in a registry of their own. */
export function createHealthMetrics(opts: HealthMetricsOptions): HealthMetrics {
  const registry = new client.Registry();
  const known = new Set(opts.knownServices);
  const serviceLabel = (s: string) => known.has(s) ? s : OTHER_SERVICE;
  const outcomes = new Set(Object.keys(statusTable));

  const checkSeconds = new LabeledHistogram(
    "grpc_health_check_seconds",
    "Duration of health check requests, by HTTP path.",
  );
  const serviceSeconds = new LabeledHistogram(
    "grpc_health_check_service_duration_seconds",
    "Duration of health checks, by service.",
  );
  const serviceRequests = new LabeledCounter(
    "grpc_health_check_service_requests",
    "Health check requests, by outcome (grpc_health_proxy's code values) and service.",
  );
  // The registry formats any object with name, help, type and get(); its types name only
  // prom-client's own classes.
  for (const m of [checkSeconds, serviceSeconds, serviceRequests]) {
    registry.registerMetric(m as unknown as client.Metric);
  }
  const stateChanges = new client.Counter({
    name: "grpc_health_proxy_state_changes_total",
    help: "Changes of a service's health state seen by background checking.",
    labelNames: ["service_name", "status"],
    registers: [registry],
  });

  if (opts.processMetrics ?? true) registerProcessMetrics(registry);

  return {
    observe(path, results, seconds) {
      checkSeconds.observe(`p${path}`, () => ({ path }), seconds);
      for (const r of results) {
        const service_name = serviceLabel(r.service);
        serviceSeconds.observe(`s${service_name}`, () => ({ service_name }), seconds);
        const code = statusTable[r.outcome].metricCode;
        serviceRequests.inc(`${code}\0${service_name}`, () => ({ code, service_name }));
      }
    },
    stateChange(service, status) {
      stateChanges.inc({
        service_name: serviceLabel(service),
        status: outcomes.has(status) ? status as Outcome : OTHER_SERVICE,
      });
    },
    async render() {
      return { contentType: registry.contentType, body: await registry.metrics() };
    },
  };
}

/** prom-client's default histogram buckets, which grpc_health_proxy's Go client also uses. */
const BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

type Labels = Record<string, string>;

/**
 * A histogram aggregated per request with a few array operations and formatted by prom-client
 * at scrape time (through the registry's custom-metric interface). prom-client's own
 * `observe` builds and hashes a label object on every call, which halved the request rate
 * measured with wrk; label keys here are precomputed by the caller, and label sets are bounded.
 */
class LabeledHistogram {
  readonly type = "histogram";
  readonly aggregator = "sum";
  readonly #series = new Map<string, { labels: Labels; buckets: Float64Array; sum: number }>();
  constructor(readonly name: string, readonly help: string) {}

  observe(key: string, labels: () => Labels, value: number): void {
    let s = this.#series.get(key);
    if (!s) {
      s = { labels: labels(), buckets: new Float64Array(BUCKETS.length + 1), sum: 0 };
      this.#series.set(key, s);
    }
    let i = 0;
    while (i < BUCKETS.length && value > BUCKETS[i]) i++;
    s.buckets[i]++;
    s.sum += value;
  }

  get() {
    const values: { labels: Labels; value: number; metricName: string }[] = [];
    for (const s of this.#series.values()) {
      let cumulative = 0;
      for (let i = 0; i <= BUCKETS.length; i++) {
        cumulative += s.buckets[i];
        const le = i < BUCKETS.length ? String(BUCKETS[i]) : "+Inf";
        values.push({
          labels: { le, ...s.labels },
          value: cumulative,
          metricName: `${this.name}_bucket`,
        });
      }
      values.push({ labels: s.labels, value: s.sum, metricName: `${this.name}_sum` });
      values.push({ labels: s.labels, value: cumulative, metricName: `${this.name}_count` });
    }
    return { name: this.name, help: this.help, type: this.type, values, aggregator: "sum" };
  }

  reset(): void {
    this.#series.clear();
  }
}

/** A counter aggregated like {@link LabeledHistogram}. */
class LabeledCounter {
  readonly type = "counter";
  readonly aggregator = "sum";
  readonly #series = new Map<string, { labels: Labels; value: number }>();
  constructor(readonly name: string, readonly help: string) {}

  inc(key: string, labels: () => Labels): void {
    const s = this.#series.get(key);
    if (s) s.value++;
    else this.#series.set(key, { labels: labels(), value: 1 });
  }

  get() {
    const values = [...this.#series.values()].map((s) => ({ labels: s.labels, value: s.value }));
    return { name: this.name, help: this.help, type: this.type, values, aggregator: "sum" };
  }

  reset(): void {
    this.#series.clear();
  }
}

/**
 * Process metrics: prom-client's default collectors that work under Deno (collected into a
 * scratch registry, the useful ones moved over) and `process_resident_memory_bytes` from
 * `Deno.memoryUsage()`, which needs no permission.
 */
function registerProcessMetrics(registry: client.Registry): void {
  const scratch = new client.Registry();
  client.collectDefaultMetrics({ register: scratch });
  for (const name of DEFAULT_METRICS_KEPT) {
    const metric = scratch.getSingleMetric(name);
    if (metric) registry.registerMetric(metric);
  }
  new client.Gauge({
    name: "process_resident_memory_bytes",
    help: "Resident memory size in bytes.",
    registers: [registry],
    collect() {
      this.set(Deno.memoryUsage().rss);
    },
  });
}

/**
 * Serves the exposition: GET (or HEAD) on `path`; other methods 405, other paths 404.
 */
export function metricsHandler(
  metrics: HealthMetrics,
  path: string,
): (req: Request) => Promise<Response> {
  return async (req) => {
    if (new URL(req.url).pathname !== path) return text(req, 404, "not found\n");
    if (req.method !== "GET" && req.method !== "HEAD") {
      return text(req, 405, "method not allowed\n", { "allow": "GET, HEAD" });
    }
    const { contentType, body } = await metrics.render();
    return new Response(req.method === "HEAD" ? null : body, {
      status: 200,
      headers: { "content-type": contentType, "cache-control": "no-store" },
    });
  };
}

function text(req: Request, status: number, body: string, extra?: Record<string, string>) {
  return new Response(req.method === "HEAD" ? null : body, {
    status,
    headers: { "content-type": "text/plain; charset=utf-8", ...extra },
  });
}
