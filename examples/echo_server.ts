/**
 * An example gRPC application to put grpc_health_proxy in front of: the `echo.v1.Echo` service
 * (`examples/echo.proto`) plus the standard `grpc.health.v1.Health` service
 * (`proto/health.proto`), both loaded with `@grpc/proto-loader`, as a typical Node/Deno gRPC
 * server would. The health status can be flipped while it runs.
 *
 * ```sh
 * deno run --allow-net --allow-read --allow-env examples/echo_server.ts --port 50051 [--tls]
 * ```
 *
 * Flags: `--port N` (default 50051; 0 picks a free port), `--host H` (default 127.0.0.1; use
 * 0.0.0.0 in a container), `--tls` (serve TLS with `certs/server.pem`, trusted by
 * `certs/ca.pem`), `--not-serving` (start as NOT_SERVING).
 *
 * It prints `listening <host:port>` once ready, then reads commands from stdin, one per line:
 * `serving`, `not_serving` (set the status of the whole server, `""`, and of `echo.v1.Echo`) and
 * `status`; each is answered with `ok <STATUS>`. SIGINT/SIGTERM shut it down gracefully.
 *
 * @module
 */

import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";

/** The service name of the echo service, as health checks name it. */
export const ECHO_SERVICE = "echo.v1.Echo";

/** A serving status of the health protocol. */
export type ServingStatus = "SERVING" | "NOT_SERVING";

/** Options of {@link startEchoServer}. */
export interface EchoServerOptions {
  /** Port to listen on (default 50051; 0 picks a free one). */
  port?: number;
  /** Address to listen on (default `127.0.0.1`). */
  host?: string;
  /** Serve TLS with `certs/server.pem` (default plaintext). */
  tls?: boolean;
  /** Initial status (default SERVING). */
  status?: ServingStatus;
}

/** A running echo server. */
export interface EchoServer {
  /** The address clients dial, e.g. `127.0.0.1:50051`. */
  readonly target: string;
  /** The TCP port listened on (the actual one when 0 was asked for). */
  readonly port: number;
  /** The current health status of the server and of `echo.v1.Echo`. */
  readonly status: ServingStatus;
  /** Sets the health status (pushed to Watch streams at once). */
  setStatus(status: ServingStatus): void;
  /** Shuts down gracefully (GOAWAY), forcing after a short grace. */
  stop(): Promise<void>;
}

const here = (path: string) => decodeURIComponent(new URL(path, import.meta.url).pathname);

const loadOptions = { keepCase: true, enums: String, defaults: true };
const packageDefinition = protoLoader.loadSync(
  [here("./echo.proto"), here("../proto/health.proto")],
  loadOptions,
);
const echoService = packageDefinition["echo.v1.Echo"] as grpc.ServiceDefinition;
const healthService = packageDefinition["grpc.health.v1.Health"] as grpc.ServiceDefinition;

interface HealthRequest {
  service: string;
}
interface HealthResponse {
  status: string;
}

function notFound(): grpc.ServiceError {
  return Object.assign(new Error("unknown service"), {
    code: grpc.status.NOT_FOUND,
    details: "unknown service",
    metadata: new grpc.Metadata(),
  });
}

/** Starts the echo and health services; resolves once listening. */
export async function startEchoServer(opts: EchoServerOptions = {}): Promise<EchoServer> {
  let status: ServingStatus = opts.status ?? "SERVING";
  // Health checks name either the whole server ("") or a service.
  const known = new Set(["", ECHO_SERVICE]);
  const watchers = new Set<
    { service: string; call: grpc.ServerWritableStream<HealthRequest, HealthResponse> }
  >();

  const server = new grpc.Server();
  server.addService(echoService, {
    Echo: (
      call: grpc.ServerUnaryCall<{ message: string }, { message: string }>,
      callback: grpc.sendUnaryData<{ message: string }>,
    ) => callback(null, { message: call.request.message }),
  });
  server.addService(healthService, {
    Check: (
      call: grpc.ServerUnaryCall<HealthRequest, HealthResponse>,
      callback: grpc.sendUnaryData<HealthResponse>,
    ) => {
      if (!known.has(call.request.service)) return callback(notFound());
      callback(null, { status });
    },
    Watch: (call: grpc.ServerWritableStream<HealthRequest, HealthResponse>) => {
      const service = call.request.service;
      const entry = { service, call };
      watchers.add(entry);
      call.on("cancelled", () => watchers.delete(entry));
      call.write({ status: known.has(service) ? status : "SERVICE_UNKNOWN" });
    },
    List: (
      _call: grpc.ServerUnaryCall<unknown, unknown>,
      callback: grpc.sendUnaryData<{ statuses: Record<string, HealthResponse> }>,
    ) => callback(null, { statuses: Object.fromEntries([...known].map((s) => [s, { status }])) }),
  });

  let credentials = grpc.ServerCredentials.createInsecure();
  if (opts.tls) {
    // grpc-js wants Buffers. The CA goes in as rootCerts (client certificates are not
    // required): with null, Deno's TLS server sends a handshake that clients reject.
    credentials = grpc.ServerCredentials.createSsl(
      readFileSync(here("../certs/ca.pem")),
      [{
        cert_chain: readFileSync(here("../certs/server.pem")),
        private_key: readFileSync(here("../certs/server-key.pem")),
      }],
      false,
    );
  }
  const host = opts.host ?? "127.0.0.1";
  const hostPart = host.includes(":") ? `[${host}]` : host;
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync(
      `${hostPart}:${opts.port ?? 50051}`,
      credentials,
      (err, p) => err ? reject(err) : resolve(p),
    );
  });

  return {
    target: `${hostPart}:${port}`,
    port,
    get status() {
      return status;
    },
    setStatus(next: ServingStatus) {
      status = next;
      for (const w of watchers) w.call.write({ status });
    },
    stop: () =>
      new Promise<void>((resolve) => {
        for (const w of watchers) w.call.end();
        watchers.clear();
        const force = setTimeout(() => {
          server.forceShutdown();
          resolve();
        }, 1000);
        server.tryShutdown(() => {
          clearTimeout(force);
          resolve();
        });
      }),
  };
}

/** Applies one stdin command; returns the reply line. */
function command(server: EchoServer, line: string): string {
  switch (line.trim().toLowerCase()) {
    case "":
      return "";
    case "serving":
      server.setStatus("SERVING");
      break;
    case "not_serving":
      server.setStatus("NOT_SERVING");
      break;
    case "status":
      break;
    default:
      return `error: unknown command ${JSON.stringify(line.trim())}: serving, not_serving, status`;
  }
  return `ok ${server.status}`;
}

async function main(args: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args,
      options: {
        port: { type: "string", default: "50051" },
        host: { type: "string", default: "127.0.0.1" },
        tls: { type: "boolean", default: false },
        "not-serving": { type: "boolean", default: false },
      },
    });
  } catch (err) {
    console.error(`${(err as Error).message}\nflags: --port N --host H --tls --not-serving`);
    return 2;
  }
  const { values } = parsed;
  const port = Number(values.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    console.error(`--port: not a port number: ${values.port}`);
    return 2;
  }
  const server = await startEchoServer({
    port,
    host: values.host,
    tls: values.tls,
    status: values["not-serving"] ? "NOT_SERVING" : "SERVING",
  });
  console.log(`listening ${server.target} (${values.tls ? "TLS" : "plaintext"}) ${server.status}`);

  const { promise: stopped, resolve: stop } = Promise.withResolvers<void>();
  for (const s of ["SIGINT", "SIGTERM"] as const) Deno.addSignalListener(s, () => stop());
  // stdin commands; EOF just leaves the server running until a signal.
  (async () => {
    let buf = "";
    try {
      for await (const chunk of Deno.stdin.readable.pipeThrough(new TextDecoderStream())) {
        buf += chunk;
        let nl;
        while ((nl = buf.indexOf("\n")) >= 0) {
          const reply = command(server, buf.slice(0, nl));
          buf = buf.slice(nl + 1);
          if (reply) console.log(reply);
        }
      }
    } catch {
      // stdin closed or unavailable
    }
  })();
  await stopped;
  await server.stop();
  return 0;
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
