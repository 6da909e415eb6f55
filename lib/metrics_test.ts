import { assert, assertEquals, assertMatch, assertStringIncludes } from "../tests/assert.ts";
import { createHealthMetrics, metricsHandler, OTHER_SERVICE } from "./metrics.ts";
import { type CheckResult, type Outcome, statusTable } from "./status.ts";

const results = (...services: string[]): CheckResult[] =>
  services.map((service) => ({ service, outcome: "SERVING" }));
const outcome = (service: string, outcome: Outcome): CheckResult[] => [{ service, outcome }];

/** Lines of the exposition that are samples (not comments) of `name`. */
function samples(body: string, name: string): string[] {
  return body.split("\n").filter((l) => l.startsWith(name + "{") || l.startsWith(name + " "));
}

Deno.test("observations show up with grpc_health_proxy's names and labels", async () => {
  const m = createHealthMetrics({ knownServices: ["", "foo.Foo"], processMetrics: false });
  m.observe("/", results("foo.Foo"), 0.02);
  m.observe("/", outcome("", "NOT_SERVING"), 0.5);
  m.observe("/", results("foo.Foo"), 0.03);
  const { contentType, body } = await m.render();
  assertStringIncludes(contentType, "text/plain");

  assertStringIncludes(body, "# TYPE grpc_health_check_seconds histogram");
  assertStringIncludes(body, 'grpc_health_check_seconds_count{path="/"} 3');
  assertStringIncludes(body, 'grpc_health_check_seconds_bucket{le="0.025",path="/"} 1');

  assertStringIncludes(body, "# TYPE grpc_health_check_service_duration_seconds histogram");
  assertStringIncludes(
    body,
    'grpc_health_check_service_duration_seconds_count{service_name="foo.Foo"} 2',
  );
  assertStringIncludes(body, 'grpc_health_check_service_duration_seconds_count{service_name=""} 1');

  assertStringIncludes(body, "# TYPE grpc_health_check_service_requests counter");
  assertStringIncludes(
    body,
    'grpc_health_check_service_requests{code="SERVING",service_name="foo.Foo"} 2',
  );
  assertStringIncludes(
    body,
    'grpc_health_check_service_requests{code="NOT_SERVING",service_name=""} 1',
  );
});

Deno.test("state changes are counted with bounded labels", async () => {
  const m = createHealthMetrics({ knownServices: ["a"], processMetrics: false });
  m.stateChange("a", "NOT_SERVING");
  m.stateChange("a", "SERVING");
  m.stateChange("zzz", "SERVING");
  m.stateChange("a", "made-up");
  const { body } = await m.render();
  assertStringIncludes(body, "# TYPE grpc_health_proxy_state_changes_total counter");
  assertStringIncludes(
    body,
    'grpc_health_proxy_state_changes_total{service_name="a",status="NOT_SERVING"} 1',
  );
  assertStringIncludes(
    body,
    `grpc_health_proxy_state_changes_total{service_name="${OTHER_SERVICE}",status="SERVING"} 1`,
  );
  assertStringIncludes(
    body,
    `grpc_health_proxy_state_changes_total{service_name="a",status="${OTHER_SERVICE}"} 1`,
  );
});

Deno.test("10,000 unknown service names collapse into one label value", async () => {
  const m = createHealthMetrics({ knownServices: ["known"], processMetrics: false });
  for (let i = 0; i < 10_000; i++) {
    m.observe("/", outcome(`svc-${i}`, i % 2 ? "NOT_FOUND" : "RPC_ERROR"), 0.001);
  }
  m.observe("/", results("known"), 0.001);
  const { body } = await m.render();
  const requests = samples(body, "grpc_health_check_service_requests");
  assertEquals(requests.sort(), [
    `grpc_health_check_service_requests{code="NotFound",service_name="${OTHER_SERVICE}"} 5000`,
    'grpc_health_check_service_requests{code="SERVING",service_name="known"} 1',
    `grpc_health_check_service_requests{code="Unknown",service_name="${OTHER_SERVICE}"} 5000`,
  ]);
  const durations = samples(body, "grpc_health_check_service_duration_seconds_count");
  assertEquals(durations.length, 2);
  assert(!body.includes("svc-"), "no unknown name may appear");
  assert(body.length < 20_000, `exposition grew to ${body.length} bytes`);
});

Deno.test("process metrics that work under Deno are exported", async () => {
  const m = createHealthMetrics({ knownServices: [] });
  const { body } = await m.render();
  for (
    const name of [
      "process_cpu_seconds_total",
      "process_start_time_seconds",
      "process_resident_memory_bytes",
      "nodejs_heap_size_used_bytes",
    ]
  ) {
    assertStringIncludes(body, `# TYPE ${name} `);
  }
  const rss = Number(samples(body, "process_resident_memory_bytes")[0].split(" ")[1]);
  assert(rss > 1_000_000, `resident memory ${rss}`);
  const start = Number(samples(body, "process_start_time_seconds")[0].split(" ")[1]);
  assert(Math.abs(start - Date.now() / 1000) < 3600, `start time ${start}`);
  // Collectors that only report zeros under Deno are left out.
  assert(!body.includes("process_open_fds"), "process_open_fds reads /proc, which Deno forbids");
  assert(!body.includes("nodejs_eventloop_lag_p99_seconds"));
  // Let the event-loop-lag collector's pending setImmediate run before the test ends.
  await new Promise((r) => setTimeout(r, 5));
});

Deno.test("two instances do not share series (private registries)", async () => {
  const a = createHealthMetrics({ knownServices: [""], processMetrics: false });
  const b = createHealthMetrics({ knownServices: [""], processMetrics: false });
  a.observe("/", results(""), 0.1);
  assertStringIncludes((await a.render()).body, 'grpc_health_check_seconds_count{path="/"} 1');
  assert(!(await b.render()).body.includes('grpc_health_check_seconds_count{path="/"}'));
});

Deno.test("metricsHandler: GET path serves the exposition; 404 and 405 otherwise", async () => {
  const m = createHealthMetrics({ knownServices: [""], processMetrics: false });
  m.observe("/", results(""), 0.1);
  const handler = metricsHandler(m, "/metrics");
  const res = await handler(new Request("http://m.test/metrics"));
  assertEquals(res.status, 200);
  assertMatch(res.headers.get("content-type") ?? "", /^text\/plain; version=0\.0\.4/);
  assertStringIncludes(await res.text(), "grpc_health_check_seconds_bucket");

  const head = await handler(new Request("http://m.test/metrics", { method: "HEAD" }));
  assertEquals([head.status, head.body], [200, null]);

  const other = await handler(new Request("http://m.test/"));
  assertEquals(other.status, 404);
  assertEquals(await other.text(), "not found\n");

  const post = await handler(new Request("http://m.test/metrics", { method: "POST" }));
  assertEquals(post.status, 405);
  assertEquals(post.headers.get("allow"), "GET, HEAD");
  await post.body?.cancel();
});

Deno.test("the code label spells every outcome as grpc_health_proxy v1.2.1 does", async () => {
  const m = createHealthMetrics({ knownServices: [""], processMetrics: false });
  for (const o of Object.keys(statusTable) as Outcome[]) m.observe("/", outcome("", o), 0.1);
  const codes = samples((await m.render()).body, "grpc_health_check_service_requests")
    .map((l) => /code="([^"]*)"/.exec(l)![1]).sort();
  assertEquals(codes, [
    "DeadlineExceeded", // Go: codes.DeadlineExceeded.String()
    "NOT_SERVING", // Go: the response's ServingStatus.String()
    "NotFound",
    "SERVICE_UNKNOWN",
    "SERVING",
    "UNKNOWN",
    "Unavailable", // v1.2.1 counts nothing here; gRPC's code for "cannot connect"
    "Unimplemented",
    "Unknown", // Go: any other RPC error
  ]);
});
