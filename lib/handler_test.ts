import { assert, assertEquals, assertStringIncludes } from "../tests/assert.ts";
import {
  healthHandler,
  type HealthHandlerOptions,
  queryValues,
  requestTarget,
  wantsJson,
} from "./handler.ts";
import { type CheckResult, type Outcome, statusTable } from "./status.ts";
import type { ListResult } from "./list.ts";

const SECRET = "dial tcp 10.1.2.3:50051: connection refused at stack frame";

/** A stand-in for lib/flags.ts' validator: 1..100 printable ASCII characters. */
function validate(name: string): string | undefined {
  if (name.length > 100) return "too long";
  if (!/^[\x21-\x7e]*$/.test(name)) return "must be printable ASCII without spaces";
  return undefined;
}

interface Calls {
  checked: (readonly string[])[];
  observed: { path: string; results: readonly CheckResult[]; seconds: number; status: number }[];
}

/** A handler whose checker answers `outcome` (or per service from `byService`) with a detail. */
function setup(
  outcome: Outcome | ((service: string) => Outcome),
  over: Partial<HealthHandlerOptions> = {},
): { handler: (req: Request) => Promise<Response>; calls: Calls } {
  // Tests await the handler whether it answered synchronously or not.
  const calls: Calls = { checked: [], observed: [] };
  const pick = typeof outcome === "function" ? outcome : () => outcome;
  const handler = healthHandler({
    path: "/",
    services: [""],
    servicesFixed: false,
    check: (services) => {
      calls.checked.push(services);
      return Promise.resolve(services.map((service) => ({
        service,
        outcome: pick(service),
        detail: SECRET,
      })));
    },
    validateServiceName: validate,
    observe: (path, results, seconds, status) =>
      calls.observed.push({ path, results, seconds, status }),
    ...over,
  });
  return { handler: (req) => Promise.resolve(handler(req)), calls };
}

const get = (path: string, init?: RequestInit) => new Request(`http://proxy.test${path}`, init);
const json = { headers: { accept: "application/json" } };

Deno.test("every row of the status table maps to its HTTP status and a text body", async () => {
  for (
    const [outcome, row] of Object.entries(statusTable) as [Outcome, typeof statusTable.SERVING][]
  ) {
    const { handler } = setup(outcome);
    const res = await handler(get("/"));
    assertEquals(res.status, row.http, outcome);
    assertEquals(res.headers.get("content-type"), "text/plain; charset=utf-8");
    // Content-Type alone keeps Deno.serve on its fast path (see respond()).
    assertEquals([...res.headers.keys()], ["content-type"]);
    const body = await res.text();
    assertEquals(body, `${outcome}\n`, outcome);
    assert(!body.includes("10.1.2.3"), "detail must not leak");
  }
});

Deno.test("named service: `<service> <STATUS>` body", async () => {
  const { handler, calls } = setup("NOT_SERVING");
  const res = await handler(get("/?serviceName=foo.v1.Foo"));
  assertEquals(res.status, 503);
  assertEquals(await res.text(), "foo.v1.Foo NOT_SERVING\n");
  assertEquals(calls.checked, [["foo.v1.Foo"]]);
});

Deno.test("empty serviceName checks the overall health", async () => {
  const { handler, calls } = setup("SERVING");
  const res = await handler(get("/?serviceName="));
  assertEquals(res.status, 200);
  assertEquals(await res.text(), "SERVING\n");
  assertEquals(calls.checked, [[""]]);
});

Deno.test("HEAD: same status and headers as GET, no body", async () => {
  const { handler } = setup("UNIMPLEMENTED");
  const head = await handler(get("/", { method: "HEAD" }));
  const full = await handler(get("/"));
  assertEquals(head.status, 501);
  assertEquals(head.body, null);
  // On the wire GET carries the same Content-Length (Deno adds it for a string body).
  const withoutLength = (h: Headers) => [...h].filter(([k]) => k !== "content-length");
  assertEquals(withoutLength(head.headers), withoutLength(full.headers));
  assertEquals(head.headers.get("content-length"), String((await full.text()).length));
});

Deno.test("other methods on the path: 405 with Allow, no check", async () => {
  const { handler, calls } = setup("SERVING");
  for (const method of ["POST", "PUT", "DELETE", "OPTIONS", "PATCH"]) {
    const res = await handler(get("/", { method }));
    assertEquals(res.status, 405, method);
    assertEquals(res.headers.get("allow"), "GET, HEAD");
    await res.body?.cancel();
  }
  assertEquals(calls.checked.length, 0);
});

Deno.test("other paths: 404 whose body is not a health status", async () => {
  const { handler, calls } = setup("SERVING", { path: "/healthz" });
  for (const p of ["/", "/healthz/", "/healthzz", "/metrics", "/healthz/x"]) {
    const res = await handler(get(p));
    assertEquals(res.status, 404, p);
    const body = await res.text();
    assertEquals(body, "not found\n");
    for (const outcome of Object.keys(statusTable)) assert(!body.includes(outcome), p);
  }
  const post = await handler(get("/nope", { method: "POST" }));
  assertEquals(post.status, 404);
  await post.body?.cancel();
  assertEquals(calls.checked.length, 0);
  assertEquals((await handler(get("/healthz"))).status, 200);
});

Deno.test("configured path with characters that URLs encode", async () => {
  const { handler } = setup("SERVING", { path: "/health check" });
  assertEquals((await handler(get("/health%20check"))).status, 200);
});

Deno.test("fixed service: the configured one is checked, others are 403", async () => {
  const { handler, calls } = setup("SERVING", { services: ["a.A"], servicesFixed: true });
  let res = await handler(get("/"));
  assertEquals(res.status, 200);
  assertEquals(await res.text(), "a.A SERVING\n");
  res = await handler(get("/?serviceName=a.A"));
  assertEquals(res.status, 200);
  await res.body?.cancel();
  res = await handler(get("/?serviceName=b.B"));
  assertEquals(res.status, 403);
  assert(!(await res.text()).includes("b.B"), "403 body must not echo the name");
  // An empty value is no parameter, as in grpc_health_proxy: the configured service.
  res = await handler(get("/?serviceName="));
  assertEquals([res.status, await res.text()], [200, "a.A SERVING\n"]);
  assertEquals(calls.checked, [["a.A"], ["a.A"], ["a.A"]]);
});

Deno.test("bad service names: 400 without a check and without echoing", async () => {
  const { handler, calls } = setup("SERVING");
  const cases = [
    `?serviceName=${"x".repeat(101)}`, // too long
    "?serviceName=a%0Ab", // newline
    "?serviceName=a%00b", // NUL
    "?serviceName=%1b%5b31m", // escape sequence
    "?serviceName=a&serviceName=b", // repeated
    "?serviceName=a&serviceName=a", // repeated, same value
    "?serviceName=%zz", // malformed percent-encoding
    "?serviceName=%E0%A4%A", // truncated UTF-8 escape
    "?serviceName=%C0%AF", // overlong UTF-8
    "?other=%zz&serviceName=a", // malformed elsewhere in the query
  ];
  for (const q of cases) {
    const res = await handler(get(`/${q}`));
    assertEquals(res.status, 400, q);
    const body = await res.text();
    assert(body.startsWith("bad request"), `${q}: ${body}`);
    const control = [...body].some((c) => c !== "\n" && (c < " " || c === "\x7f"));
    assert(!control, `${q}: control characters in body`);
    assert(!body.includes("xxxxxxxxxx"), `${q}: input echoed`);
  }
  assertEquals(calls.checked.length, 0);
});

Deno.test("serviceName is decoded ('+' and %XX) and other parameters are ignored", async () => {
  const { handler, calls } = setup("SERVING", {
    validateServiceName: () => undefined,
  });
  await (await handler(get("/?x=1&serviceName=a%2Eb+c&y"))).body?.cancel();
  assertEquals(calls.checked, [["a.b c"]]);
});

Deno.test("queryValues: decoding rules", () => {
  assertEquals(queryValues("", "k"), []);
  assertEquals(queryValues("?k", "k"), [""]);
  assertEquals(queryValues("?k=1&&k=2&j=3", "k"), ["1", "2"]);
  assertEquals(queryValues("?%6B=v", "k"), ["v"]);
  assertEquals(queryValues("?k=%", "k"), undefined);
});

Deno.test("JSON bodies: one service", async () => {
  let { handler } = setup("SERVING");
  let res = await handler(get("/?serviceName=s.S", json));
  assertEquals(res.status, 200);
  assertEquals(res.headers.get("content-type"), "application/json; charset=utf-8");
  assertEquals(await res.json(), { service: "s.S", status: "SERVING" });

  for (const outcome of Object.keys(statusTable) as Outcome[]) {
    if (outcome === "SERVING") continue;
    ({ handler } = setup(outcome));
    res = await handler(get("/", json));
    assertEquals(res.status, statusTable[outcome].http);
    const text = await res.text();
    assert(!text.includes("10.1.2.3"), "detail must not leak");
    const body = JSON.parse(text);
    assertEquals(body.service, "");
    assertEquals(body.status, outcome);
    assertEquals(typeof body.reason, "string");
  }
});

Deno.test("Accept parsing: application/json anywhere in the list, not with q=0", () => {
  assert(wantsJson("application/json"));
  assert(wantsJson("text/html, Application/JSON;q=0.5, */*"));
  assert(wantsJson("text/plain;q=1,application/json ; charset=utf-8"));
  assert(!wantsJson(null));
  assert(!wantsJson("*/*"));
  assert(!wantsJson("application/jsonx"));
  assert(!wantsJson("application/json;q=0"));
  assert(!wantsJson("text/plain, application/json; q=0.000"));
});

Deno.test("several services: worst status, one line per service", async () => {
  const outcomes: Record<string, Outcome> = { a: "SERVING", b: "NOT_FOUND", c: "NOT_SERVING" };
  const { handler, calls } = setup((s) => outcomes[s], {
    services: ["a", "b", "c"],
    servicesFixed: true,
  });
  let res = await handler(get("/"));
  // NOT_FOUND (404) is more severe than NOT_SERVING (503) in the table's ranking.
  assertEquals(res.status, 404);
  assertEquals(await res.text(), "a SERVING\nb NOT_FOUND\nc NOT_SERVING\n");
  assertEquals(calls.checked, [["a", "b", "c"]]);

  res = await handler(get("/", json));
  assertEquals(res.status, 404);
  assertEquals(await res.json(), {
    status: "NOT_FOUND",
    services: [
      { service: "a", status: "SERVING" },
      { service: "b", status: "NOT_FOUND", reason: "service not found on upstream" },
      { service: "c", status: "NOT_SERVING", reason: "upstream reports NOT_SERVING" },
    ],
  });

  res = await handler(get("/?serviceName=c"));
  assertEquals(res.status, 503);
  assertEquals(await res.text(), "c NOT_SERVING\n");
});

Deno.test("all services SERVING: 200", async () => {
  const { handler } = setup("SERVING", { services: ["a", "b"], servicesFixed: true });
  const res = await handler(get("/"));
  assertEquals(res.status, 200);
  assertEquals(await res.text(), "a SERVING\nb SERVING\n");
});

Deno.test("bodies stay under 1 KiB with many or long services", async () => {
  const many = Array.from({ length: 500 }, (_, i) => `svc.number${i}.v1.Service`);
  const { handler } = setup("NOT_SERVING", { services: many, servicesFixed: true });
  const text = await (await handler(get("/"))).text();
  assert(new TextEncoder().encode(text).length < 1024, `text body ${text.length} bytes`);
  assertStringIncludes(text, "more\n");
  const jtext = await (await handler(get("/", json))).text();
  assert(new TextEncoder().encode(jtext).length < 1024, `json body ${jtext.length} bytes`);
  const body = JSON.parse(jtext);
  assertEquals(body.services.length + body.omitted, 500);

  const long = "l".repeat(5000);
  const single = setup("SERVING", { validateServiceName: () => undefined });
  const t = await (await single.handler(get(`/?serviceName=${long}`))).text();
  assert(t.length < 1024, `long-name body ${t.length} bytes`);
});

Deno.test("names outside printable ASCII are escaped in bodies", async () => {
  const { handler } = setup("SERVING", { validateServiceName: () => undefined });
  const text = await (await handler(get("/?serviceName=a%1B%5B2Jb%0Ac"))).text();
  assertEquals(text, "a\\u{1b}[2Jb\\u{a}c SERVING\n");
});

Deno.test("liveness path: 200 whenever the upstream answered, 503 otherwise", async () => {
  for (
    const [outcome, row] of Object.entries(statusTable) as [Outcome, typeof statusTable.SERVING][]
  ) {
    const { handler, calls } = setup(outcome, { livenessPath: "/livez" });
    const res = await handler(get("/livez"));
    assertEquals(res.status, row.answered ? 200 : 503, outcome);
    const body = await res.text();
    assertEquals(body, `${row.answered ? "LIVE" : "NOT_LIVE"} ${outcome}\n`);
    assertEquals(calls.observed[0].path, "/livez");

    const jres = await handler(get("/livez", json));
    assertEquals(await jres.json(), {
      service: "",
      status: row.answered ? "LIVE" : "NOT_LIVE",
      outcome,
    });
  }
  const { handler } = setup("SERVING", { livenessPath: "/livez" });
  const post = await handler(get("/livez", { method: "POST" }));
  assertEquals(post.status, 405);
  await post.body?.cancel();
  const head = await handler(get("/livez", { method: "HEAD" }));
  assertEquals([head.status, head.body], [200, null]);
});

Deno.test("liveness with several services: NOT_LIVE if any did not answer", async () => {
  const outcomes: Record<string, Outcome> = { a: "NOT_SERVING", b: "DEADLINE_EXCEEDED" };
  const { handler } = setup((s) => outcomes[s], {
    services: ["a", "b"],
    servicesFixed: true,
    livenessPath: "/livez",
  });
  const res = await handler(get("/livez"));
  assertEquals(res.status, 503);
  assertEquals(await res.text(), "a LIVE NOT_SERVING\nb NOT_LIVE DEADLINE_EXCEEDED\n");
});

Deno.test("no liveness path configured: it is just another 404", async () => {
  const { handler } = setup("SERVING", { livenessPath: "" });
  const res = await handler(get("/livez"));
  assertEquals(res.status, 404);
  await res.body?.cancel();
});

Deno.test("observe hook gets path, results, duration and the HTTP status sent", async () => {
  const { handler, calls } = setup("NOT_FOUND", { path: "/hc" });
  await (await handler(get("/hc?serviceName=x"))).body?.cancel();
  assertEquals(calls.observed.length, 1);
  const o = calls.observed[0];
  assertEquals([o.path, o.status, o.results.map((r) => r.service)], ["/hc", 404, ["x"]]);
  assert(o.seconds >= 0 && o.seconds < 5);
  // Refused requests are not observed (no check ran).
  await (await handler(get("/hc?serviceName=%zz"))).body?.cancel();
  assertEquals(calls.observed.length, 1);
});

Deno.test("a checker that breaks its promise and rejects gives a bare 500", async () => {
  const handler = healthHandler({
    path: "/",
    services: [""],
    servicesFixed: false,
    check: () => Promise.reject(new Error(SECRET)),
    validateServiceName: validate,
  });
  const res = await handler(get("/"));
  assertEquals(res.status, 500);
  assertEquals(await res.text(), "internal error\n");
});

Deno.test("body never contains detail, in any format or path", async () => {
  for (const outcome of Object.keys(statusTable) as Outcome[]) {
    const { handler } = setup(outcome, { livenessPath: "/live" });
    for (const p of ["/", "/live", "/?serviceName=q"]) {
      for (const init of [undefined, json]) {
        const text = await (await handler(get(p, init))).text();
        assert(!text.includes(SECRET) && !text.includes("10.1.2.3"), `${outcome} ${p}`);
      }
    }
  }
});

Deno.test("results in memory (background checking) answer synchronously and skip the async checker", () => {
  const { calls } = setup("SERVING");
  const handler = healthHandler({
    path: "/",
    services: ["a"],
    servicesFixed: true,
    check: () => Promise.reject(new Error("must not be called")),
    resultsInMemory: (services) => services.map((service) => ({ service, outcome: "NOT_SERVING" })),
    validateServiceName: validate,
    observe: (path, results, seconds, status) =>
      calls.observed.push({ path, results, seconds, status }),
  });
  const res = handler(get("/"));
  if (!(res instanceof Response)) throw new Error("expected a synchronous Response");
  assertEquals(res.status, 503);
  assertEquals(calls.observed.length, 1);
});

Deno.test("markup characters in names are escaped in bodies; errors are no-store, nosniff", async () => {
  const { handler } = setup("NOT_FOUND");
  const res = await handler(get("/?serviceName=%3Cscript%3Ex%26%22'%3C%2Fscript%3E"));
  const body = await res.text();
  assertEquals(body.includes("<") || body.includes(">") || body.includes("&"), false, body);
  assertEquals(body, "\\u{3c}script\\u{3e}x\\u{26}\\u{22}\\u{27}\\u{3c}/script\\u{3e} NOT_FOUND\n");
  const notFound = await handler(get("/nope"));
  assertEquals(notFound.headers.get("cache-control"), "no-store");
  assertEquals(notFound.headers.get("x-content-type-options"), "nosniff");
  await notFound.body?.cancel();
});

Deno.test("a backslash in a name is escaped, so escapes in bodies are unambiguous", async () => {
  const { handler } = setup("NOT_FOUND");
  // The name `\u{3c}"` spelled out, and the name `<"`: two names, two different bodies.
  const spelled = await (await handler(get("/?serviceName=%5Cu%7B3c%7D%22"))).text();
  const real = await (await handler(get("/?serviceName=%3C%22"))).text();
  assertEquals(spelled, "\\u{5c}u{3c}\\u{22} NOT_FOUND\n");
  assertEquals(real, "\\u{3c}\\u{22} NOT_FOUND\n");
  const json = await (await handler(get("/?serviceName=%5C%22", {
    headers: { accept: "application/json" },
  }))).json();
  assertEquals(json.service, "\\u{5c}\\u{22}");
});

Deno.test("requestTarget: the target after the Host header, whatever the Host holds", () => {
  const req = (url: string, host?: string) =>
    new Request(url, { headers: host === undefined ? {} : { host } });
  assertEquals(requestTarget(req("http://x/metrics/p?q=1", "x/metrics")), "/p?q=1");
  assertEquals(requestTarget(req("http://x/?serviceName=z/", "x/?serviceName=z")), "/");
  assertEquals(requestTarget(req("http://a.example:8080/p?q")), "/p?q");
  assertEquals(requestTarget(req("http://a.example:8080")), "/");
});

/** A handler with the list path on `/services`, whose lister answers `answer`. */
function listSetup(answer: ListResult, over: Partial<HealthHandlerOptions> = {}) {
  const listed: number[] = [];
  const { handler, calls } = setup("SERVING", {
    listPath: "/services",
    list: () => {
      listed.push(1);
      return Promise.resolve(answer);
    },
    ...over,
  });
  return { handler, calls, listed };
}

Deno.test("list path: one entry per listed service; 200 only when all are SERVING", async () => {
  const cases: [ListResult, number, string][] = [
    [
      { results: [{ service: "a", outcome: "SERVING" }, { service: "b", outcome: "SERVING" }] },
      200,
      "a SERVING\nb SERVING\n",
    ],
    [
      { results: [{ service: "a", outcome: "SERVING" }, { service: "b", outcome: "UNKNOWN" }] },
      503,
      "a SERVING\nb UNKNOWN\n",
    ],
    [{ results: [] }, 503, "upstream lists no services (UNKNOWN)\n"],
    [
      { failure: { service: "", outcome: "UNIMPLEMENTED", detail: SECRET } },
      501,
      "upstream does not implement Health/List (UNIMPLEMENTED)\n",
    ],
    [
      { failure: { service: "", outcome: "CONNECTION_FAILED", detail: SECRET } },
      503,
      "cannot connect to upstream (CONNECTION_FAILED)\n",
    ],
  ];
  for (const [answer, status, body] of cases) {
    const { handler, calls, listed } = listSetup(answer);
    const res = await handler(get("/services?serviceName=ignored"));
    assertEquals([res.status, await res.text()], [status, body]);
    assertEquals(res.headers.get("content-type"), "text/plain; charset=utf-8");
    assertEquals([listed.length, calls.checked.length], [1, 0]);
    assertEquals(calls.observed.map((o) => [o.path, o.results.length, o.status]), [[
      "/services",
      0,
      status,
    ]]);
    const j = await handler(get("/services", json));
    assertEquals(j.status, status);
    assertEquals(j.headers.get("content-type"), "application/json; charset=utf-8");
    const parsed = await j.json();
    assertEquals(parsed.services.length, "results" in answer ? answer.results.length : 0);
  }
});

Deno.test("list path: HEAD without body, other methods 405, off when not configured", async () => {
  const answer: ListResult = { results: [{ service: "a", outcome: "NOT_SERVING" }] };
  const { handler, listed } = listSetup(answer);
  const head = await handler(get("/services", { method: "HEAD" }));
  assertEquals([head.status, head.body, head.headers.get("content-length")], [503, null, "14"]);
  const post = await handler(get("/services", { method: "POST" }));
  assertEquals([post.status, post.headers.get("allow")], [405, "GET, HEAD"]);
  await post.body?.cancel();
  assertEquals(listed.length, 1);
  // The readiness path still checks; without -http-list-path the path is not found.
  assertEquals((await handler(get("/"))).status, 200);
  const off = listSetup(answer, { listPath: "" });
  const res = await off.handler(get("/services"));
  assertEquals([res.status, await res.text(), off.listed.length], [404, "not found\n", 0]);
});
