/**
 * Helpers shared by the end-to-end tests: run the real `main.ts` as a subprocess, find the
 * certificates, start server mode in front of an upstream, and start raw TCP servers for transport
 * faults.
 *
 * @module
 */

import { assertEquals } from "./assert.ts";
import { type Config, parseFlags } from "../lib/flags.ts";
import { type Logger, silentLogger } from "../lib/log.ts";
import { type RunningServer, type ServerOptions, startServer } from "../lib/server.ts";

/** The repository root. */
export const root = new URL("..", import.meta.url).pathname;

/** Path of a file in `certs/`. */
export function cert(name: string): string {
  return `${root}certs/${name}`;
}

/** Reads a file in `certs/` as text. */
export function certText(name: string): string {
  return Deno.readTextFileSync(cert(name));
}

/** The permissions the program is documented to run with. */
export const programPermissions = [
  "--allow-net",
  "--allow-read",
  "--allow-write",
  "--allow-env",
];

/** What a finished subprocess did. */
export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Options for {@link runMain}. */
export interface RunOptions {
  env?: Record<string, string>;
  /** Called with the running child (e.g. to send a signal). */
  onStart?: (child: Deno.ChildProcess) => void;
  /** Run this script instead of `main.ts` (e.g. the bundle). */
  script?: string;
  cwd?: string;
}

/** Runs the real program (`deno run <permissions> main.ts ...args`) and collects its output. */
export async function runMain(args: string[], opts: RunOptions = {}): Promise<RunResult> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", ...programPermissions, opts.script ?? `${root}main.ts`, ...args],
    env: { NO_COLOR: "1", ...opts.env },
    cwd: opts.cwd ?? root,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  opts.onStart?.(child);
  const out = await child.output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

/**
 * A TCP server on a free loopback port that accepts connections and then never speaks (a
 * stand-in for an upstream that is not an HTTP/2 server); counts connections and keeps the first
 * bytes each one sent (a port handed out again may get strays from an earlier test's clients,
 * so a test that must see no connection from itself looks at what was sent).
 */
export function silentTcpServer(): {
  port: number;
  connections: () => number;
  firstBytes: () => string[];
  close: () => void;
} {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns: Deno.Conn[] = [];
  const first: string[] = [];
  (async () => {
    try {
      for await (const conn of listener) {
        conns.push(conn);
        const buf = new Uint8Array(512);
        conn.read(buf).then(
          (n) => first.push(new TextDecoder("latin1").decode(buf.subarray(0, n ?? 0))),
          () => first.push(""),
        );
      }
    } catch {
      // listener closed
    }
  })();
  return {
    port: (listener.addr as Deno.NetAddr).port,
    connections: () => conns.length,
    firstBytes: () => [...first],
    close: () => {
      for (const c of conns) {
        try {
          c.close();
        } catch {
          // already closed by the peer
        }
      }
      listener.close();
    },
  };
}

/**
 * The first port below 1024 that refuses connections on 127.0.0.1 when the tests start.
 * Privileged ports are outside the kernel's ephemeral range, so no `port: 0` bind (every
 * listener in these tests) can ever be handed it: it stays closed for the whole run.
 */
async function findRefusingPort(): Promise<number> {
  for (let port = 1; port < 1024; port++) {
    try {
      (await Deno.connect({ hostname: "127.0.0.1", port })).close();
    } catch (e) {
      if (e instanceof Deno.errors.ConnectionRefused) return port;
    }
  }
  throw new Error("every port below 1024 on 127.0.0.1 accepts or fails oddly: cannot test");
}

const refusingPort = await findRefusingPort();

/** A loopback port that refuses connections for the whole test run (see findRefusingPort). */
export function closedPort(): number {
  return refusingPort;
}

/**
 * A free ephemeral loopback port for a test that must bind it itself later (an upstream that
 * appears after the proxy started). Bound, then released: another bind may take it meanwhile,
 * so the caller must retry or be a single, short window.
 */
export function portToBindLater(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

/** A normal request still gets its normal answer. */
export async function assertHealthy(url: string, when: string): Promise<void> {
  const res = await fetch(url);
  const body = await res.text();
  assertEquals([res.status, body], [200, "SERVING\n"], `normal GET ${when}`);
}

let curlChecked: boolean | undefined;
/** Whether curl can be run; says so on the console when it cannot (tests then skip visibly). */
export async function haveCurl(test: string): Promise<boolean> {
  if (curlChecked === undefined) {
    try {
      curlChecked = (await new Deno.Command("curl", { args: ["--version"], stdout: "null" })
        .output()).success;
    } catch {
      curlChecked = false;
    }
  }
  if (!curlChecked) console.warn(`SKIPPED (curl not installed): ${test}`);
  return curlChecked;
}

/** The Config of a flag list; throws on invalid flags (tests pass valid ones). */
export function configFrom(args: string[]): Config {
  const parsed = parseFlags(args);
  if (!parsed.ok) throw new Error(parsed.message);
  return parsed.config;
}

/**
 * Starts server mode in-process in front of `upstream`, health and metrics on free loopback
 * ports; `extra` flags come last, so they override these. The upstream timeouts are generous
 * (a busy machine must not turn an answer into a timeout): a test of timeouts sets its own.
 */
export function serveInFront(
  upstream: { target: string },
  extra: string[] = [],
  logger: Logger = silentLogger,
  options: ServerOptions = {},
): Promise<RunningServer> {
  return startServer(
    configFrom([
      `-grpcaddr=${upstream.target}`,
      "-http-listen-addr=127.0.0.1:0",
      "-metrics-http-listen-addr=127.0.0.1:0",
      "-connect-timeout=30s",
      "-rpc-timeout=30s",
      ...extra,
    ]),
    logger,
    options,
  );
}

/** mulberry32: a small seeded PRNG, so a failing random case can be replayed. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
