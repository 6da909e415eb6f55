/**
 * Health/List end to end: the list path of server mode (text and JSON) and `-list` of probe and
 * runcli modes (the real `main.ts` as a subprocess, for its exit codes), against real upstreams
 * with List (the grpc-js fixture) and without it (a server built before gRFC A90), for every
 * status combination and failure.
 */

import { assert, assertEquals, assertMatch } from "./assert.ts";
import { type FixtureStatus, HealthFixture } from "./fixture/health_server.ts";
import { closedPort, runMain, serveInFront } from "./helpers.ts";
import { startRawUpstream } from "./fixture/raw_upstream.ts";
import { MAX_LISTED } from "../lib/list.ts";

/** An upstream for one scenario: a fixture, or a port that refuses connections. */
interface Upstream {
  target: string;
  fixture?: HealthFixture;
  stop(): Promise<void>;
}

async function fixture(
  statuses: Record<string, FixtureStatus>,
  setup: (f: HealthFixture) => void = () => {},
  list = true,
): Promise<Upstream> {
  const f = await HealthFixture.start({ statuses, list });
  setup(f);
  return { target: f.target, fixture: f, stop: () => f.stop() };
}

interface Scenario {
  name: string;
  start: () => Promise<Upstream>;
  /** Flags for both modes (short timeouts where the timeout is what is tested). */
  flags?: string[];
  http: number;
  text: string;
  json: { status: string; services: number; reason?: string };
  probe: number;
  runcli: number;
  /** What `-list` prints on stdout. */
  stdout: string;
  /** What it prints on stderr (both modes). */
  stderr?: RegExp;
}

const scenarios: Scenario[] = [
  {
    name: "all SERVING",
    start: () => fixture({ "": "SERVING", "a.v1.A": "SERVING", "b.v1.B": "SERVING" }),
    http: 200,
    text: '"" SERVING\na.v1.A SERVING\nb.v1.B SERVING\n',
    json: { status: "SERVING", services: 3 },
    probe: 0,
    runcli: 0,
    stdout: '"" SERVING\na.v1.A SERVING\nb.v1.B SERVING\n',
  },
  {
    name: "one NOT_SERVING",
    start: () => fixture({ "": "SERVING", "b.v1.B": "NOT_SERVING", "a.v1.A": "SERVING" }),
    http: 503,
    text: '"" SERVING\na.v1.A SERVING\nb.v1.B NOT_SERVING\n',
    json: { status: "NOT_SERVING", services: 3 },
    probe: 4,
    runcli: 5,
    stdout: '"" SERVING\na.v1.A SERVING\nb.v1.B NOT_SERVING\n',
  },
  {
    name: "UNKNOWN and SERVICE_UNKNOWN in the map",
    start: () => fixture({ "": "SERVING", u: "UNKNOWN", su: "SERVICE_UNKNOWN" }),
    http: 503,
    text: '"" SERVING\nsu SERVICE_UNKNOWN\nu UNKNOWN\n',
    json: { status: "UNKNOWN", services: 3 },
    probe: 4,
    runcli: 5,
    stdout: '"" SERVING\nsu SERVICE_UNKNOWN\nu UNKNOWN\n',
  },
  {
    name: "empty list",
    start: () => fixture({}),
    http: 503,
    text: "upstream lists no services (UNKNOWN)\n",
    json: { status: "UNKNOWN", services: 0, reason: "upstream lists no services" },
    probe: 4,
    runcli: 5,
    stdout: "",
    stderr: /^no services listed: the upstream's Health\/List answered an empty list$/m,
  },
  {
    name: "upstream without List (UNIMPLEMENTED)",
    start: () => fixture({ "": "SERVING" }, () => {}, false),
    http: 501,
    text: "upstream does not implement Health/List (UNIMPLEMENTED)\n",
    json: {
      status: "UNIMPLEMENTED",
      services: 0,
      reason: "upstream does not implement Health/List",
    },
    probe: 3,
    runcli: 4,
    stdout: "",
    stderr:
      /this server does not implement Health\/List \(grpc\.health\.v1\.Health\/List\): rpc error: code = Unimplemented/,
  },
  {
    name: "upstream down",
    start: () =>
      Promise.resolve({ target: `127.0.0.1:${closedPort()}`, stop: () => Promise.resolve() }),
    http: 503,
    text: "cannot connect to upstream (CONNECTION_FAILED)\n",
    json: { status: "CONNECTION_FAILED", services: 0, reason: "cannot connect to upstream" },
    probe: 2,
    runcli: 1,
    stdout: "",
    stderr: /failed to connect service at .*ECONNREFUSED/,
  },
  {
    name: "deadline exceeded",
    start: () => fixture({ "": "SERVING" }, (f) => (f.behavior = "hang")),
    flags: ["-rpc-timeout=300ms"],
    http: 503,
    text: "health check timed out (DEADLINE_EXCEEDED)\n",
    json: { status: "DEADLINE_EXCEEDED", services: 0, reason: "health check timed out" },
    probe: 3,
    runcli: 2,
    stdout: "",
    stderr: /timeout: health rpc did not complete within 300ms/,
  },
];

for (const s of scenarios) {
  Deno.test(`list path and -list: ${s.name}`, async () => {
    const upstream = await s.start();
    const server = await serveInFront(upstream, ["-http-list-path=/services", ...(s.flags ?? [])]);
    try {
      const url = `${server.health.url}/services`;
      const text = await fetch(url);
      assertEquals([text.status, await text.text()], [s.http, s.text], "text");
      assertEquals(text.headers.get("content-type"), "text/plain; charset=utf-8");
      const json = await fetch(url, { headers: { accept: "application/json" } });
      assertEquals(json.status, s.http, "json");
      const body = await json.json();
      assertEquals(
        {
          status: body.status,
          services: body.services.length,
          ...("reason" in body ? { reason: body.reason } : {}),
        },
        s.json,
      );
      // The readiness path is unchanged by the list path.
      if (s.http === 200) assertEquals((await fetch(server.health.url)).status, 200);
    } finally {
      await server.stop();
    }
    try {
      for (const mode of ["probe", "runcli"] as const) {
        const args = mode === "probe"
          ? [`-addr=${upstream.target}`, "-list"]
          : ["-runcli", `-grpcaddr=${upstream.target}`, "-list"];
        const r = await runMain([...args, ...(s.flags ?? [])]);
        assertEquals([r.code, r.stdout], [s[mode], s.stdout], `${mode}: ${r.stderr}`);
        if (s.stderr) assertMatch(r.stderr, s.stderr, mode);
        else assertEquals(r.stderr, "", mode);
        // One clear line, never a stack trace.
        assert(r.stderr.split("\n").length <= 2, r.stderr);
      }
    } finally {
      await upstream.stop();
    }
  });
}

Deno.test("list path caps what it shows and counts the rest; -list prints every service", async () => {
  const count = MAX_LISTED + 100;
  const names = Array.from({ length: count }, (_, i) => `s${String(i).padStart(5, "0")}`);
  const upstream = await fixture(Object.fromEntries(names.map((n) => [n, "SERVING"])));
  const server = await serveInFront(upstream, ["-http-list-path=/services"]);
  try {
    const url = `${server.health.url}/services`;
    const text = await fetch(url);
    const lines = (await text.text()).split("\n");
    assertEquals(text.status, 200);
    assertEquals(lines.slice(0, 2), ["s00000 SERVING", "s00001 SERVING"]);
    assertEquals(lines.slice(-3), [`${names[MAX_LISTED - 1]} SERVING`, "... 100 more", ""]);
    const json = await (await fetch(url, { headers: { accept: "application/json" } })).json();
    assertEquals([json.status, json.services.length, json.omitted], ["SERVING", MAX_LISTED, 100]);
    const r = await runMain([`-addr=${upstream.target}`, "-list"]);
    assertEquals([r.code, r.stdout.split("\n").length], [0, count + 1], r.stderr);
  } finally {
    await server.stop();
    await upstream.stop();
  }
});

Deno.test("concurrent list requests share one Health/List call", async () => {
  const upstream = await fixture({ "": "SERVING" });
  // Answers late, so the requests below arrive while the first call is out.
  upstream.fixture!.delayMs = 2000;
  const server = await serveInFront(upstream, ["-http-list-path=/services"]);
  try {
    const answers = await Promise.all(
      Array.from(
        { length: 20 },
        () => fetch(`${server.health.url}/services`).then((r) => r.text()),
      ),
    );
    assert(answers.every((a) => a === '"" SERVING\n'), answers.join());
    // One call, or two if a request arrived only after the first answer (a very slow machine).
    assert(upstream.fixture!.listCount() <= 2, `${upstream.fixture!.listCount()} List calls`);
  } finally {
    await server.stop();
    await upstream.stop();
  }
});

Deno.test("with background checking the list path still asks the upstream at once", async () => {
  const upstream = await fixture({ "": "SERVING", a: "SERVING" });
  const server = await serveInFront(upstream, [
    "-http-list-path=/services",
    "-check-interval=1h",
  ]);
  try {
    const url = `${server.health.url}/services`;
    assertEquals(await (await fetch(url)).text(), '"" SERVING\na SERVING\n');
    upstream.fixture!.setStatus("a", "NOT_SERVING");
    const after = await fetch(url);
    assertEquals([after.status, await after.text()], [503, '"" SERVING\na NOT_SERVING\n']);
    // The readiness path answers from memory, checked once an hour.
    assertEquals((await fetch(server.health.url)).status, 200);
  } finally {
    await server.stop();
    await upstream.stop();
  }
});

Deno.test("-list with -service: one line, the mode's invalid-argument exit code", async () => {
  for (
    const [args, code] of [
      [["-addr=127.0.0.1:1", "-list", "-service=a"], 1],
      [["-runcli", "-grpcaddr=127.0.0.1:1", "-service-name=a", "-list"], 255],
    ] as const
  ) {
    const r = await runMain([...args]);
    assertEquals(r.code, code, r.stderr);
    assertMatch(r.stderr, /^error: cannot specify -service(-name)? with -list: .*\n$/);
  }
});

Deno.test("a malformed or oversized List answer is RPC_ERROR, never a crash", async () => {
  for (const fault of ["bad-protobuf", "huge"] as const) {
    const upstream = await startRawUpstream(fault);
    const server = await serveInFront(upstream, ["-http-list-path=/services"]);
    try {
      const res = await fetch(`${server.health.url}/services`);
      assertEquals(
        [res.status, await res.text()],
        [503, "health check RPC failed (RPC_ERROR)\n"],
        fault,
      );
      const r = await runMain([`-addr=${upstream.target}`, "-list"]);
      assertEquals([r.code, r.stdout], [3, ""], r.stderr);
      assertMatch(r.stderr, /^error: health rpc failed: rpc error: code = \w+ desc = .*\n$/);
    } finally {
      await server.stop();
      await upstream.close();
    }
  }
});
