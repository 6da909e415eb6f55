#!/usr/bin/env -S deno run --v8-flags=--max-semi-space-size=1,--no-concurrent-recompilation,--heap-growing-percent=30 --allow-net --allow-read --allow-write --allow-env
/**
 * grpc_health_proxy: tells load balancers, Kubernetes and people whether a gRPC server is
 * healthy, through the gRPC Health Checking Protocol. Flags pick the mode (server, probe or
 * runcli, see `lib/flags.ts`); this file only wires flags to the mode and the mode to an exit
 * code.
 *
 * @module
 */

import { type Config, parseFlags, usage } from "./lib/flags.ts";
import { invalidArgumentExit } from "./lib/status.ts";
import { errorLine, writeStderr } from "./lib/log.ts";
import { abortOnTermination } from "./lib/signals.ts";
import { versionLine } from "./lib/version.ts";

/** Where the program writes; tests pass their own. */
export interface MainIo {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
}

const encoder = new TextEncoder();
const defaultIo: MainIo = {
  stdout: (text) => {
    Deno.stdout.writeSync(encoder.encode(text));
  },
  stderr: writeStderr,
};

/**
 * The permission a mode cannot run without and that Deno would only report with a stack trace
 * (grpc-js reads environment variables while it loads), as a one-line fix; undefined when fine.
 */
export function missingPermission(): string | undefined {
  const env = Deno.permissions.querySync({ name: "env", variable: "GRPC_NODE_VERBOSITY" });
  if (env.state !== "granted") {
    return "grpc-js needs to read its GRPC_* environment variables: run with --allow-env";
  }
  return undefined;
}

/** Whether grpc-js or the server ran, which may leave connections to drain at exit. */
let drainGuardNeeded = false;

async function runMode(config: Config, io: MainIo): Promise<number> {
  const missing = missingPermission();
  if (missing) {
    io.stderr(`error: ${missing}\n`);
    return invalidArgumentExit[config.mode];
  }
  if (config.mode === "server") {
    drainGuardNeeded = true;
    // Loaded only here: probe start-up must not pay for the HTTP server and metrics.
    const { runServer } = await import("./lib/server.ts");
    return await runServer(config);
  }
  // Loaded after the permission check: importing grpc-js reads the environment.
  const { grpcJsUsed, runOneShot } = await import("./lib/probe.ts");
  const cancel = abortOnTermination(() => io.stderr("cancellation received\n"));
  try {
    return await runOneShot(config.mode, config, {
      print: (line) => io.stderr(line + "\n"),
      out: (line) => io.stdout(line + "\n"),
      signal: cancel.signal,
    });
  } finally {
    cancel.dispose();
    drainGuardNeeded = grpcJsUsed();
  }
}

/**
 * Runs the program with `args` (without the program name) and returns its exit code.
 * `invokedAs` is the program's path or name (`grpc_health_probe` selects probe mode).
 */
export async function main(
  args: string[],
  invokedAs = "grpc_health_proxy",
  io: MainIo = defaultIo,
): Promise<number> {
  const parsed = parseFlags(args, invokedAs);
  if (!parsed.ok) {
    io.stderr(`error: ${parsed.message}\n`);
    return invalidArgumentExit[parsed.mode];
  }
  const config = parsed.config;
  if (config.help) {
    io.stdout(usage(config.mode));
    return 0;
  }
  if (config.version) {
    io.stdout(versionLine() + "\n");
    return 0;
  }
  return await runMode(config, io);
}

/**
 * The name this program was started under: the compiled binary's as invoked (`argv[0]`, so a
 * symlink named grpc_health_probe selects probe mode; `Deno.execPath()` would resolve the link)
 * or the script's (`Deno.mainModule` keeps a script symlink's own name). Deno has no `argv[0]`
 * of its own and `node:process` adds ~7 MB to a probe, so it is loaded only when the name can
 * change the mode: not when the flags already select probe mode and parse.
 */
async function invokedAs(args: string[]): Promise<string> {
  const script = decodeURIComponent(new URL(Deno.mainModule).pathname);
  const byFlags = parseFlags(args, script);
  if (byFlags.ok && byFlags.config.mode === "probe") return script;
  const { default: process } = await import("node:process");
  const binary = process.argv0;
  return /grpc_health_probe(\.[a-z]+)?$/.test(binary) ? binary : script;
}

if (import.meta.main) {
  // A rejection nobody handled (inside a library, say) is one log line, never a stack trace,
  // and never takes a serving health proxy down.
  globalThis.addEventListener("unhandledrejection", (e) => {
    e.preventDefault();
    writeStderr(`error: unexpected failure: ${errorLine(e.reason)}\n`);
  });
  const code = await main(Deno.args, await invokedAs(Deno.args));
  // Let the event loop drain so the upstream connection closes gracefully (GOAWAY, FIN), but
  // never hang on something left open.
  Deno.exitCode = code;
  // The fast path leaves nothing open; a first timer would cost it ~4 MB (docs/performance.md).
  if (drainGuardNeeded) Deno.unrefTimer(setTimeout(() => Deno.exit(code), 2000));
}
