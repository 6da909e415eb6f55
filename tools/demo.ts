/**
 * `deno task demo`: everything needed to see grpc_health_proxy work, with nothing else
 * installed. It starts one upstream (`examples/echo_server.ts`, plaintext) and the proxy
 * (`main.ts`) three times, once per listener kind:
 *
 * - HTTP on 127.0.0.1:8080 (with metrics on 127.0.0.1:9000),
 * - HTTPS on 127.0.0.1:8443 (`certs/server.pem`),
 * - HTTPS with client certificates (mTLS) on 127.0.0.1:8444,
 *
 * taking free ports instead where those are taken. It prints the `curl` commands to try, runs
 * the same requests itself and shows what they return, flips the upstream to NOT_SERVING and
 * back (503, then 200), and keeps running until Ctrl-C, then stops every child cleanly. While
 * it runs, typing `serving` or `not_serving` flips the upstream.
 *
 * `--once`: run the show, stop and exit (0 if every answer was the expected one, else 1).
 * `--verbose`: also show the children's logs.
 *
 * @module
 */

import { relative } from "node:path";

const root = decodeURIComponent(new URL("..", import.meta.url).pathname);
const encoder = new TextEncoder();

const PROGRAM_PERMISSIONS = ["--allow-net", "--allow-read", "--allow-write", "--allow-env"];
const UPSTREAM_PERMISSIONS = ["--allow-net", "--allow-read", "--allow-env"];
/** How long a child may take to start (a cold Deno cache compiles TypeScript first). */
const START_TIMEOUT_MS = 30_000;

// ---------------------------------------------------------------------------------------------
// Children

/** A child process whose output lines are kept (the last few) and can be waited for. */
class Child {
  readonly name: string;
  readonly process: Deno.ChildProcess;
  readonly lines: string[] = [];
  #waiters: { re: RegExp; resolve: (line: string) => void }[] = [];
  #stdin?: WritableStreamDefaultWriter<Uint8Array>;
  #exited = false;
  readonly status: Promise<Deno.CommandStatus>;

  constructor(name: string, args: string[], opts: { stdin?: boolean; verbose: boolean }) {
    this.name = name;
    this.process = new Deno.Command(Deno.execPath(), {
      args,
      cwd: root,
      env: { NO_COLOR: "1" },
      stdin: opts.stdin ? "piped" : "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    if (opts.stdin) this.#stdin = this.process.stdin.getWriter();
    this.status = this.process.status.then((s) => {
      this.#exited = true;
      return s;
    });
    this.#pump(this.process.stdout, opts.verbose);
    this.#pump(this.process.stderr, opts.verbose);
  }

  get exited(): boolean {
    return this.#exited;
  }

  async #pump(stream: ReadableStream<Uint8Array>, verbose: boolean): Promise<void> {
    let buf = "";
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
      buf += chunk;
      let nl;
      while ((nl = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        this.lines.push(line);
        if (this.lines.length > 40) this.lines.shift();
        if (verbose) console.log(`    [${this.name}] ${line}`);
        for (const w of [...this.#waiters]) {
          if (w.re.test(line)) {
            this.#waiters.splice(this.#waiters.indexOf(w), 1);
            w.resolve(line);
          }
        }
      }
    }
  }

  /** Resolves with the next output line matching `re`; rejects on timeout or exit. */
  waitForLine(re: RegExp, timeoutMs = START_TIMEOUT_MS): Promise<string> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`${this.name}: no ${re} in time`)),
        timeoutMs,
      );
      this.status.then(() => {
        clearTimeout(timer);
        reject(new Error(`${this.name} exited:\n${this.lines.join("\n")}`));
      });
      this.#waiters.push({
        re,
        resolve: (line) => {
          clearTimeout(timer);
          resolve(line);
        },
      });
    });
  }

  /** Writes one line to the child's stdin. */
  async send(line: string): Promise<void> {
    await this.#stdin?.write(encoder.encode(line + "\n"));
  }

  /** SIGTERM, then SIGKILL if it has not exited within 5 s. */
  async stop(): Promise<Deno.CommandStatus> {
    if (!this.#exited) {
      try {
        this.process.kill("SIGTERM");
      } catch {
        // exited meanwhile
      }
    }
    const timer = setTimeout(() => {
      try {
        this.process.kill("SIGKILL");
      } catch {
        // exited meanwhile
      }
    }, 5000);
    const status = await this.status;
    clearTimeout(timer);
    try {
      await this.#stdin?.close();
    } catch {
      // the child closed its end
    }
    return status;
  }
}

// ---------------------------------------------------------------------------------------------
// Ports, listeners, requests

const taken = new Set<number>();

/** `preferred` if it is free on 127.0.0.1, else a free port; never the same one twice. */
function pickPort(preferred: number): number {
  for (const port of [preferred, 0, 0, 0]) {
    try {
      const l = Deno.listen({ hostname: "127.0.0.1", port });
      const actual = (l.addr as Deno.NetAddr).port;
      l.close();
      if (!taken.has(actual)) {
        taken.add(actual);
        return actual;
      }
    } catch {
      // in use: try a free one
    }
  }
  throw new Error("no free port");
}

/** A repo file as a person in the current directory types it (relative, or absolute). */
function shown(path: string): string {
  const rel = relative(Deno.cwd(), root + path);
  return rel.startsWith("..") ? root + path : rel;
}

interface Listener {
  kind: "HTTP" | "HTTPS" | "mTLS";
  url: string;
  flags: string[];
  curl: string;
  client: Deno.HttpClient;
  child?: Child;
}

/** `200 SERVING`, or why the request failed. */
async function ask(client: Deno.HttpClient, url: string, accept?: string): Promise<string> {
  try {
    const res = await fetch(url, {
      client,
      headers: accept ? { accept } : {},
      signal: AbortSignal.timeout(5000),
    });
    const body = (await res.text()).trim();
    return `${res.status} ${body}`;
  } catch (err) {
    const cause = (err as Error).cause ?? err;
    return `failed: ${String((cause as Error).message ?? cause).split("\n")[0]}`;
  }
}

/** Waits until the listener answers HTTP at all (any status). */
async function waitUntilAnswering(l: Listener): Promise<void> {
  const deadline = Date.now() + START_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (l.child?.exited) break;
    if (!(await ask(l.client, l.url)).startsWith("failed")) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`${l.kind} proxy did not start:\n${l.child?.lines.join("\n")}`);
}

// ---------------------------------------------------------------------------------------------
// The show

async function main(args: string[]): Promise<number> {
  const unknown = args.filter((a) => a !== "--once" && a !== "--verbose");
  if (unknown.length > 0) {
    console.error(`unknown argument ${unknown[0]}; usage: deno task demo [--once] [--verbose]`);
    return 2;
  }
  const once = args.includes("--once");
  const verbose = args.includes("--verbose");
  const children: Child[] = [];

  // Proxies first, then the upstream they check (children[0]).
  const stopAll = async () => {
    const [first, ...rest] = children;
    const statuses = await Promise.all(rest.map((c) => c.stop()));
    if (first) statuses.unshift(await first.stop());
    return children.map((c, i) => `${c.name} exit ${statuses[i].code}`).join(", ");
  };
  // Ctrl-C at any point: stop the children (they may have got the SIGINT too) and leave.
  const onSignal = async () => {
    console.log("\nstopping...");
    console.log(`stopped: ${await stopAll()}`);
    Deno.exit(0);
  };
  for (const s of ["SIGINT", "SIGTERM"] as const) Deno.addSignalListener(s, onSignal);

  try {
    return await show(children, stopAll, { once, verbose });
  } catch (err) {
    // A child that did not start, or did not answer: say why, leave nothing running.
    console.error(`\ndemo failed: ${(err as Error).message}`);
    console.error(`stopped: ${await stopAll()}`);
    return 1;
  }
}

/** Starts the children (into `children`), runs the show; returns the exit code. */
async function show(
  children: Child[],
  stopAll: () => Promise<string>,
  { once, verbose }: { once: boolean; verbose: boolean },
): Promise<number> {
  let problems = 0;
  const ca = await Deno.readTextFile(`${root}certs/ca.pem`);
  const clientCert = await Deno.readTextFile(`${root}certs/client.pem`);
  const clientKey = await Deno.readTextFile(`${root}certs/client-key.pem`);

  // The upstream.
  const upstreamPort = pickPort(50051);
  const upstream = new Child(
    "upstream",
    ["run", ...UPSTREAM_PERMISSIONS, "examples/echo_server.ts", "--port", String(upstreamPort)],
    { stdin: true, verbose },
  );
  children.push(upstream);
  const listening = await upstream.waitForLine(/^listening /);
  const target = listening.split(" ")[1];

  // The proxies: one per listener kind; only the HTTP one serves metrics (one port each).
  const metricsPort = pickPort(9000);
  const tlsFlags = [
    "-https-listen-cert=certs/server.pem",
    "-https-listen-key=certs/server-key.pem",
  ];
  const caFlag = `--cacert ${shown("certs/ca.pem")}`;
  const certFlags = `--cert ${shown("certs/client.pem")} --key ${shown("certs/client-key.pem")}`;
  const http = pickPort(8080), https = pickPort(8443), mtls = pickPort(8444);
  const listeners: Listener[] = [
    {
      kind: "HTTP",
      url: `http://127.0.0.1:${http}/`,
      flags: [`-metrics-http-listen-addr=127.0.0.1:${metricsPort}`, "-http-list-path=/services"],
      curl: `curl -i http://127.0.0.1:${http}/`,
      client: Deno.createHttpClient({}),
    },
    {
      kind: "HTTPS",
      url: `https://127.0.0.1:${https}/`,
      flags: [...tlsFlags, "-metrics-http-listen-addr="],
      curl: `curl -i ${caFlag} https://127.0.0.1:${https}/`,
      client: Deno.createHttpClient({ caCerts: [ca] }),
    },
    {
      kind: "mTLS",
      url: `https://127.0.0.1:${mtls}/`,
      flags: [
        ...tlsFlags,
        "-https-listen-verify",
        "-https-listen-ca=certs/ca.pem",
        "-metrics-http-listen-addr=",
      ],
      curl: `curl -i ${caFlag} ${certFlags} https://127.0.0.1:${mtls}/`,
      client: Deno.createHttpClient({ caCerts: [ca], cert: clientCert, key: clientKey }),
    },
  ];
  const noCertClient = Deno.createHttpClient({ caCerts: [ca] });
  for (const l of listeners) {
    const port = new URL(l.url).port;
    l.flags = [`-grpcaddr=${target}`, `-http-listen-addr=127.0.0.1:${port}`, ...l.flags];
    // The children run in the repo root, as `deno task start` does: flag paths are relative to it.
    l.child = new Child(l.kind, ["run", ...PROGRAM_PERMISSIONS, "main.ts", ...l.flags], {
      verbose,
    });
    children.push(l.child);
  }

  console.log("grpc_health_proxy demo\n");
  console.log(`upstream   ${target}  examples/echo_server.ts (plaintext gRPC, Echo + Health)`);
  await Promise.all(listeners.map(waitUntilAnswering));
  for (const l of listeners) {
    console.log(`${l.kind.padEnd(10)} ${l.url}\n           deno task start ${l.flags.join(" ")}`);
  }
  console.log(`metrics    http://127.0.0.1:${metricsPort}/metrics (of the HTTP proxy)`);

  const expect = (got: string, wanted: RegExp) => {
    if (!wanted.test(got)) problems++;
    return wanted.test(got) ? got : `${got}   <- expected ${wanted.source}`;
  };
  const showAll = async (wanted: RegExp) => {
    for (const l of listeners) {
      console.log(`  ${l.kind.padEnd(6)} -> ${expect(await ask(l.client, l.url), wanted)}`);
    }
  };

  console.log(`\nTry these (from ${Deno.cwd()}):\n`);
  for (const l of listeners) console.log(`  ${l.curl}`);
  const [h] = listeners;
  console.log(`  curl -i -H 'Accept: application/json' ${h.url}`);
  console.log(`  curl -i '${h.url}?serviceName=echo.v1.Echo'`);
  console.log(`  curl -i ${h.url}services          # every service Health/List names`);
  console.log(`  deno task start -addr=${target} -list   # the same, as a probe's exit code`);
  console.log(`  curl -s http://127.0.0.1:${metricsPort}/metrics | grep grpc_health_check`);

  console.log("\nWhat they return now:\n");
  for (const l of listeners) {
    console.log(`  $ ${l.curl}\n    -> ${expect(await ask(l.client, l.url), /^200 SERVING$/)}`);
  }
  console.log(`  $ curl -i -H 'Accept: application/json' ${h.url}`);
  console.log(
    `    -> ${expect(await ask(h.client, h.url, "application/json"), /^200 \{.*SERVING/)}`,
  );
  console.log(`  $ curl -i '${h.url}?serviceName=echo.v1.Echo'`);
  console.log(
    `    -> ${expect(await ask(h.client, `${h.url}?serviceName=echo.v1.Echo`), /^200 /)}`,
  );
  console.log(`  $ curl -i '${h.url}?serviceName=no.such.Service'`);
  console.log(
    `    -> ${expect(await ask(h.client, `${h.url}?serviceName=no.such.Service`), /^404 /)}`,
  );
  // Several lines: shown on one, separated by " | ".
  const listed = async () => (await ask(h.client, `${h.url}services`)).replaceAll("\n", " | ");
  console.log(`  $ curl -i ${h.url}services`);
  console.log(`    -> ${expect(await listed(), /^200 "" SERVING \| echo\.v1\.Echo SERVING$/)}`);
  const mtlsUrl = listeners[2].url;
  console.log(`  $ curl -i ${caFlag} ${mtlsUrl}   (mTLS without a client certificate)`);
  console.log(
    `    -> ${expect(await ask(noCertClient, mtlsUrl), /^failed/)} (refused at the handshake)`,
  );
  const metrics = await ask(h.client, `http://127.0.0.1:${metricsPort}/metrics`);
  const requestLines = metrics.split("\n").filter((l) =>
    l.startsWith("grpc_health_check_service_requests")
  );
  console.log(`  $ curl -s http://127.0.0.1:${metricsPort}/metrics | grep requests`);
  for (const line of requestLines.length ? requestLines : [metrics.split("\n")[0]]) {
    console.log(`    ${line}`);
  }

  console.log(`\nFlipping the upstream to NOT_SERVING (its stdin: "not_serving"):\n`);
  await upstream.send("not_serving");
  await upstream.waitForLine(/^ok NOT_SERVING/, 5000);
  await showAll(/^503 NOT_SERVING$/);
  console.log(`  list   -> ${expect(await listed(), /^503 .*echo\.v1\.Echo NOT_SERVING$/)}`);
  console.log(`\n...and back to SERVING ("serving"):\n`);
  await upstream.send("serving");
  await upstream.waitForLine(/^ok SERVING/, 5000);
  await showAll(/^200 SERVING$/);

  if (problems > 0) console.log(`\n${problems} answer(s) were not the expected ones.`);
  if (once) {
    for (const c of [...listeners.map((l) => l.client), noCertClient]) c.close();
    const stopped = await stopAll();
    console.log(`\nstopped: ${stopped}`);
    // Every child must shut down cleanly (exit 0 on SIGTERM), too.
    if (/exit [^0]/.test(stopped)) problems++;
    return problems === 0 ? 0 : 1;
  }

  console.log(
    "\nRunning. Type serving or not_serving (Enter) to flip the upstream; Ctrl-C stops everything.",
  );
  // Forward typed commands to the upstream; the signal handler ends the program.
  let buf = "";
  for await (const chunk of Deno.stdin.readable.pipeThrough(new TextDecoderStream())) {
    buf += chunk;
    let nl;
    while ((nl = buf.indexOf("\n")) >= 0) {
      const line = buf.slice(0, nl).trim();
      buf = buf.slice(nl + 1);
      if (line === "") continue;
      await upstream.send(line);
      console.log(`  upstream: ${await upstream.waitForLine(/^(ok|error)/, 5000)}`);
      console.log(`  ${h.curl} -> ${await ask(h.client, h.url)}`);
    }
  }
  // stdin closed (no terminal): keep serving until a signal.
  await new Promise(() => setInterval(() => {}, 1 << 30));
  return 0;
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
