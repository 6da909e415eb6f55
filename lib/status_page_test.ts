import { assert, assertEquals, assertStringIncludes } from "../tests/assert.ts";
import { configFrom } from "../tests/helpers.ts";
import { htmlProblems, schemaProblems, statusSchema } from "../tests/status_page_checks.ts";
import { RecentAnswers, StateHistory } from "./status_history.ts";
import {
  checkMode,
  escapeHtml,
  statusHtml,
  statusJson,
  type StatusSnapshot,
  statusSnapshots,
  upstreamTls,
  withStatusPage,
} from "./status_page.ts";

const HOSTILE = `<img src=x onerror="alert(1)">&'`;

/** A snapshot with a service name a client chose and an upstream error with markup in it. */
function snapshot(): StatusSnapshot {
  let now = Date.UTC(2026, 0, 2, 3, 4, 5);
  const history = new StateHistory({ now: () => now });
  history.record("", undefined, { service: "", outcome: "SERVING" });
  now += 1000;
  history.record(HOSTILE, undefined, {
    service: HOSTILE,
    outcome: "RPC_ERROR",
    detail: "13 INTERNAL: <b>boom</b>",
  });
  now += 1000;
  history.record("", "SERVING", { service: "", outcome: "NOT_SERVING" });
  const answers = new RecentAnswers({ now: () => now - 5000 });
  answers.observe(0.0002);
  return statusSnapshots({
    config: configFrom(["-grpcaddr=up<stream>:50051", "-check-interval=2s"]),
    target: "up<stream>:50051",
    history,
    answers,
    now: () => now,
  })();
}

Deno.test("the JSON has every part, conforms to the schema, and keeps names verbatim", () => {
  const json = JSON.parse(statusJson(snapshot()));
  assertEquals(schemaProblems(json, statusSchema), []);
  assertEquals(json.upstream, { target: "up<stream>:50051", tls: "plaintext" });
  assertEquals([json.mode, json.intervalMs], ["interval", 2000]);
  assertEquals(
    json.services.map((s: Record<string, unknown>) => [s.service, s.outcome, s.http, s.since]),
    [
      ["", "NOT_SERVING", 503, "2026-01-02T03:04:07.000Z"],
      [HOSTILE, "RPC_ERROR", 503, "2026-01-02T03:04:06.000Z"],
    ],
  );
  assertEquals(json.changes.map((c: Record<string, unknown>) => [c.service, c.from, c.to]), [
    ["", "SERVING", "NOT_SERVING"],
    [HOSTILE, null, "RPC_ERROR"],
    ["", null, "SERVING"],
  ]);
  assertEquals(json.changes[1].detail, "13 INTERNAL: <b>boom</b>");
});

Deno.test("the schema check catches what it is there for", () => {
  const json = JSON.parse(statusJson(snapshot()));
  json.services[0].outcome = "FINE";
  json.changes[0].at = "yesterday";
  delete json.answers;
  json.extra = 1;
  assertEquals(schemaProblems(json, statusSchema).length, 4);
});

Deno.test("the HTML is well-formed and escapes every name and cause", () => {
  const html = statusHtml(snapshot());
  assertEquals(htmlProblems(html), []);
  assert(!html.includes("<img"), "a client's service name became markup");
  assert(!html.includes("<b>"), "an upstream's error became markup");
  assertStringIncludes(html, escapeHtml(HOSTILE));
  assertStringIncludes(html, "&lt;b&gt;boom&lt;/b&gt;");
  assertStringIncludes(html, "<code>up&lt;stream&gt;:50051</code> (plaintext)");
  assertStringIncludes(html, "interval (2000 ms)");
  assertStringIncludes(html, "<h2>Last 3 state changes</h2>");
  assertStringIncludes(html, '<meta http-equiv="refresh" content="5">');
});

Deno.test("the well-formedness check catches what it is there for", () => {
  assertEquals(htmlProblems("<p>a < b</p>").length, 1);
  assertEquals(htmlProblems("<p><b>a</p></b>").length, 2);
  assertEquals(htmlProblems("<td class=ok>x</td>").length, 3); // unquoted: not a tag
  assertEquals(htmlProblems("<div><script>x</script></div>").length, 1);
  assertEquals(htmlProblems("<div>"), ["left open: div"]);
});

Deno.test("an empty page says so instead of showing empty tables", () => {
  const s = statusSnapshots({
    config: configFrom(["-grpcaddr=localhost:1"]),
    target: "localhost:1",
    history: new StateHistory(),
    answers: new RecentAnswers(),
  })();
  const html = statusHtml(s);
  assertEquals(htmlProblems(html), []);
  assertStringIncludes(html, "none checked yet");
  assertStringIncludes(html, "no answers");
  assertEquals(schemaProblems(JSON.parse(statusJson(s)), statusSchema), []);
});

Deno.test("TLS and check modes are named from the flags", () => {
  const of = (...flags: string[]) => {
    const c = configFrom(["-grpcaddr=localhost:1", ...flags]);
    return [upstreamTls(c), checkMode(c)];
  };
  assertEquals(of(), ["plaintext", "on demand"]);
  assertEquals(of("-tls", "-check-interval=1s"), ["TLS", "interval"]);
  assertEquals(of("-tls", "-tls-no-verify", "-watch"), ["TLS no-verify", "watch"]);
  assertEquals(of("-tls", "-tls-client-cert=c.pem", "-tls-client-key=k.pem"), [
    "mTLS",
    "on demand",
  ]);
});

Deno.test("the page answers /status and /status.json; anything else goes to metrics", async () => {
  const next = (req: Request) =>
    Promise.resolve(new Response(`metrics ${new URL(req.url).pathname}`));
  const page = withStatusPage(snapshot, { status: "/status", metrics: "/metrics" }, next);
  const get = (path: string, headers: Record<string, string> = {}, method = "GET") =>
    page(new Request(`http://localhost:9000${path}`, { method, headers }));

  const html = await get("/status", { accept: "text/html,application/xhtml+xml,*/*" });
  assertEquals(html.headers.get("content-type"), "text/html; charset=utf-8");
  assertStringIncludes(html.headers.get("content-security-policy")!, "default-src 'none'");
  assertEquals(html.headers.get("cache-control"), "no-store");
  assertStringIncludes(await html.text(), "<!DOCTYPE html>");

  for (
    const [path, headers] of [["/status", { accept: "application/json" }], ["/status.json", {}]]
  ) {
    const res = await get(path as string, headers as Record<string, string>);
    assertEquals(res.headers.get("content-type"), "application/json", path as string);
    assertEquals(schemaProblems(await res.json(), statusSchema), []);
  }
  const head = await get("/status", {}, "HEAD");
  assertEquals([head.status, await head.text()], [200, ""]);
  const post = await get("/status", {}, "POST");
  assertEquals([post.status, post.headers.get("allow")], [405, "GET, HEAD"]);
  await post.body?.cancel();
  assertEquals(await (await get("/metrics")).text(), "metrics /metrics");
  assertEquals(await (await get("/status/")).text(), "metrics /status/");
});

Deno.test("a metrics path of /status keeps the metrics there; the page stays at .json", async () => {
  const next = () => Promise.resolve(new Response("metrics"));
  const page = withStatusPage(snapshot, { status: "/status", metrics: "/status" }, next);
  assertEquals(await (await page(new Request("http://localhost/status"))).text(), "metrics");
  const json = await page(new Request("http://localhost/status.json"));
  assertEquals(json.headers.get("content-type"), "application/json");
  await json.body?.cancel();
});

Deno.test("the page moves with -status-http-path and is off when it is empty", async () => {
  const next = (req: Request) =>
    Promise.resolve(new Response(`metrics ${new URL(req.url).pathname}`));
  const moved = withStatusPage(snapshot, { status: "/ops/state", metrics: "/metrics" }, next);
  const json = await moved(new Request("http://localhost/ops/state.json"));
  assertEquals(schemaProblems(await json.json(), statusSchema), []);
  const old = await moved(new Request("http://localhost/status"));
  assertEquals(await old.text(), "metrics /status");
  const off = withStatusPage(snapshot, { status: "", metrics: "/metrics" }, next);
  assertEquals(await (await off(new Request("http://localhost/status"))).text(), "metrics /status");
});
