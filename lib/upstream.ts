/**
 * The upstream health client: one grpc-js channel to the upstream and `checkHealth`-style calls
 * of `grpc.health.v1.Health/Check` on it, each bounded by the connect timeout (reaching READY)
 * and then by the RPC timeout (the call), and classified into the {@link Outcome}s of the
 * status table.
 *
 * @module
 */

import { Buffer } from "node:buffer";
import { isIP } from "node:net";
import tls from "node:tls";
import * as grpc from "@grpc/grpc-js";
import {
  decodeHealthCheckResponse,
  decodeHealthListResponse,
  encodeHealthCheckRequest,
} from "./health_codec.ts";
import {
  CHECK_METHOD,
  CONNECT_TIMEOUT,
  dialTarget,
  outcomeOfStatus,
  UpstreamConfigError,
  type UpstreamOptions,
} from "./upstream_options.ts";
import { readPemFile, tlsMaterialProblem } from "./tls_material.ts";
import type { CheckResult, Outcome } from "./status.ts";
import { listedResults, type ListResult } from "./list.ts";
import { DroppedConnectionBackoff } from "./upstream_backoff.ts";

// Re-exported: callers of the grpc-js client need not know where the shared parts live.
export { CONNECT_TIMEOUT, dialTarget, UpstreamConfigError, type UpstreamOptions };

const WATCH_METHOD = "/grpc.health.v1.Health/Watch";
const LIST_METHOD = "/grpc.health.v1.Health/List";
/** `HealthListRequest` has no fields: its encoding is empty. */
const LIST_REQUEST = new Uint8Array(0);

let ipServernameShimInstalled = false;

/**
 * grpc-js passes the target host as TLS `servername`; Deno's `node:tls` throws when that is an
 * IP literal (Node ignores it, as RFC 6066 forbids IP SNI). Drop an IP `servername` before
 * connecting: the certificate is then verified against the IP (its IP SANs), as in Node.
 */
function installIpServernameShim(): void {
  if (ipServernameShimInstalled) return;
  ipServernameShimInstalled = true;
  const mutableTls = tls as { connect: typeof tls.connect };
  const connect = mutableTls.connect;
  mutableTls.connect = function (this: unknown, ...args: unknown[]) {
    const [options] = args;
    if (
      options !== null && typeof options === "object" &&
      typeof (options as tls.ConnectionOptions).servername === "string" &&
      isIP((options as tls.ConnectionOptions).servername!.replace(/^\[|\]$/g, "")) !== 0
    ) {
      const { servername: _ip, ...rest } = options as tls.ConnectionOptions;
      args[0] = rest;
    }
    return (connect as (...a: unknown[]) => tls.TLSSocket).apply(this, args);
  } as typeof tls.connect;
}

/** Builds the channel credentials; throws {@link UpstreamConfigError} on unreadable files. */
export function channelCredentials(opts: UpstreamOptions): grpc.ChannelCredentials {
  if (!opts.tls) return grpc.credentials.createInsecure();
  installIpServernameShim();
  const read = (flag: string, path: string) => {
    try {
      return path ? readPemFile(flag, path) : undefined;
    } catch (e) {
      throw new UpstreamConfigError((e as Error).message);
    }
  };
  const material = {
    ca: read("-tls-ca-cert", opts.tlsCaCert),
    cert: read("-tls-client-cert", opts.tlsClientCert),
    key: read("-tls-client-key", opts.tlsClientKey),
  };
  // Rejected before dialing, as grpc-health-probe does, not as a misleading handshake failure.
  const problem = tlsMaterialProblem(material, {
    ca: "-tls-ca-cert",
    cert: "-tls-client-cert",
    key: "-tls-client-key",
  });
  if (problem) throw new UpstreamConfigError(problem);
  const pem = (text: string | undefined) => text === undefined ? null : Buffer.from(text, "latin1");
  const [ca, cert, key] = [pem(material.ca), pem(material.cert), pem(material.key)];
  const verify: grpc.VerifyOptions = opts.tlsNoVerify
    ? { rejectUnauthorized: false, checkServerIdentity: () => undefined }
    : {};
  try {
    return grpc.credentials.createSsl(ca, key, cert, verify);
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    throw new UpstreamConfigError(`invalid TLS material: ${reason}`);
  }
}

function channelOptions(opts: UpstreamOptions): grpc.ChannelOptions {
  const options: grpc.ChannelOptions = {
    // As the README says: proxy environment variables are not applied to the upstream.
    "grpc.enable_http_proxy": 0,
    "grpc.primary_user_agent": opts.userAgent,
    // Health responses are a few bytes; refuse anything large from a misbehaving upstream.
    "grpc.max_receive_message_length": 64 * 1024,
    // No retries: a check reports what the upstream did, once.
    "grpc.enable_retries": 0,
    // grpc-js shares connections between clients of one target in a global pool; a channel of
    // our own must not inherit another's failed-connection backoff.
    "grpc.use_local_subchannel_pool": 1,
  };
  if (opts.gzip) options["grpc.default_compression_algorithm"] = 2; // gzip
  if (opts.tls && opts.tlsServerName) {
    options["grpc.ssl_target_name_override"] = opts.tlsServerName;
    options["grpc.default_authority"] = opts.tlsServerName;
  }
  if (opts.fastReconnect) {
    options["grpc.initial_reconnect_backoff_ms"] = 100;
    options["grpc.min_reconnect_backoff_ms"] = 100;
    options["grpc.max_reconnect_backoff_ms"] = 500;
  }
  return options;
}

/** How a connection attempt ended before the RPC. */
type ReadyResult = { ok: true } | { ok: false; detail: string };

// Details grpc-js puts on UNAVAILABLE when a call could not get a connection at all (it
// appends a timestamp to some causes; that is noise in a one-line message).
const NO_CONNECTION =
  /^No connection established\. Last error: (?:Error: )?(.*?)(?: \(\d{4}-\d\d-\d\dT[\d:.]+Z\))?(?:\. Resolution note:.*)?$/s;

// What grpc-js says when the target's name cannot be resolved.
const UNRESOLVED = /^(Name resolution failed for target|Failed to parse DNS address)/;

// What grpc-js says when it tries to use an HTTP/2 session that is already gone.
const DEAD_SESSION = /Failed to start HTTP\/2 stream|session has been destroyed/;

/** Whether a call failed because the upstream dropped the connection under it. */
function droppedConnection(err: grpc.ServiceError): boolean {
  return err.code === grpc.status.UNAVAILABLE
    ? err.details === "Stream refused by server"
    : DEAD_SESSION.test(err.details);
}

/** Makes grpc-js's connection causes say what happened, in the user's terms. */
function connectionCause(raw: string): string {
  // The connection closed before HTTP/2 settings arrived: typically a TLS server.
  if (raw === "Failed to connect") {
    return "connection closed before the HTTP/2 handshake (is the upstream using TLS? try -tls)";
  }
  return raw.replace(/^Error \[ERR_[A-Z_]+\]: /, "");
}

/** gRPC status codes as Go's `codes.Code.String()` spells them, which log scrapers match. */
const GO_CODE_NAMES = (
  "OK Canceled Unknown InvalidArgument DeadlineExceeded NotFound AlreadyExists PermissionDenied " +
  "ResourceExhausted FailedPrecondition Aborted OutOfRange Unimplemented Internal Unavailable " +
  "DataLoss Unauthenticated"
).split(" ");

/**
 * A gRPC error's code and text as Go's grpc prints them (`rpc error: code = NotFound desc =
 * ...`), for logs and CLI output only.
 */
export function grpcErrorDetail(err: Pick<grpc.ServiceError, "code" | "details">): string {
  const name = GO_CODE_NAMES[err.code] ?? `Code(${err.code})`;
  return `rpc error: code = ${name} desc = ${err.details}`;
}

/** The result of one Check RPC that ended in a gRPC error. */
function outcomeOfError(err: grpc.ServiceError): Outcome {
  switch (err.code) {
    case grpc.status.NOT_FOUND:
      return "NOT_FOUND";
    case grpc.status.UNIMPLEMENTED:
      // grpc-js reports a response that ended without a whole message as UNIMPLEMENTED "No
      // message received"; that is a broken answer, not a missing health service.
      return err.details === "No message received" ? "RPC_ERROR" : "UNIMPLEMENTED";
    case grpc.status.DEADLINE_EXCEEDED:
      return "DEADLINE_EXCEEDED";
    default:
      return "RPC_ERROR";
  }
}

/** Health checks of one upstream over one long-lived channel. */
export class UpstreamHealth {
  readonly target: string;
  #client: grpc.Client;
  readonly #opts: UpstreamOptions;
  readonly #credentials: grpc.ChannelCredentials;
  readonly #backoff = new DroppedConnectionBackoff();
  #closed = false;

  /** Throws {@link UpstreamConfigError} when TLS files cannot be read. */
  constructor(opts: UpstreamOptions) {
    this.#opts = opts;
    this.target = dialTarget(opts.addr);
    this.#credentials = channelCredentials(opts);
    this.#client = this.#newClient();
  }

  #newClient(): grpc.Client {
    return new grpc.Client(this.target, this.#credentials, channelOptions(this.#opts));
  }

  /**
   * Replaces the channel when grpc-js kept a dead connection as READY: a GOAWAY that arrives
   * while the connection is being set up is lost, and every later call then fails with
   * "Failed to start HTTP/2 stream" forever, even once the upstream is back.
   */
  #healDeadConnection(err: grpc.ServiceError): void {
    if (err.code !== grpc.status.INTERNAL || !DEAD_SESSION.test(err.details)) return;
    if (this.#closed) return;
    const dead = this.#client;
    this.#client = this.#newClient();
    dead.close();
  }

  /**
   * Checks one service: waits at most the connect timeout for a connection, then at most the
   * RPC timeout for the answer. Resolves with the outcome; never rejects.
   */
  async check(service: string, signal?: AbortSignal): Promise<CheckResult> {
    const held = this.#backoff.held(service);
    if (held) return held;
    const ready = await this.#waitReady(signal);
    if (!ready.ok) return { service, outcome: "CONNECTION_FAILED", detail: ready.detail };
    const answer = await this.#call(
      CHECK_METHOD,
      encodeHealthCheckRequest(service),
      decodeHealthCheckResponse,
      service,
      signal,
    );
    return "failure" in answer
      ? answer.failure
      : { service, outcome: outcomeOfStatus(answer.value) };
  }

  /**
   * Calls `Health/List` (gRFC A90) with the same timeouts, credentials and metadata as
   * {@link check}: every listed service's outcome, sorted by name, or how the call failed (as
   * a result for service `""`; UNIMPLEMENTED when the upstream has no List). Never rejects.
   */
  async list(signal?: AbortSignal): Promise<ListResult> {
    const held = this.#backoff.held("");
    if (held) return { failure: held };
    const ready = await this.#waitReady(signal);
    if (!ready.ok) {
      return { failure: { service: "", outcome: "CONNECTION_FAILED", detail: ready.detail } };
    }
    const answer = await this.#call(
      LIST_METHOD,
      LIST_REQUEST,
      decodeHealthListResponse,
      "",
      signal,
    );
    return "failure" in answer ? answer : { results: listedResults(answer.value) };
  }

  /**
   * Deno's TLS reports an expired or not-yet-valid upstream certificate as "unable to verify
   * the first certificate". When a connection failed that way, look at the certificate once
   * more (without trusting it, within the connect timeout) and name the real cause.
   */
  async explain(result: CheckResult): Promise<CheckResult> {
    if (
      result.outcome !== "CONNECTION_FAILED" || !this.#opts.tls ||
      !/unable to verify the first certificate/.test(result.detail ?? "")
    ) return result;
    const validity = await peerCertificateValidity(this.target, this.#opts);
    if (!validity) return result;
    const now = new Date();
    if (now > validity.to) {
      return {
        ...result,
        detail: `certificate has expired: current time ${now.toISOString()} is after ` +
          validity.to.toISOString(),
      };
    }
    if (now < validity.from) {
      return {
        ...result,
        detail: `certificate is not yet valid: current time ${now.toISOString()} is before ` +
          validity.from.toISOString(),
      };
    }
    return result;
  }

  /** Closes the channel gracefully (HTTP/2 GOAWAY, then FIN). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#client.close();
  }

  /** The channel's connectivity state, for logs. */
  get state(): string {
    return grpc.connectivityState[this.#client.getChannel().getConnectivityState(false)];
  }

  /**
   * Opens a `Health/Watch` stream. `onStatus` gets each status number; `onEnd` gets the
   * outcome the stream ended with (UNIMPLEMENTED means the upstream has no Watch).
   * Returns a function that cancels the stream.
   */
  watch(
    service: string,
    onStatus: (result: CheckResult) => void,
    onEnd: (result: CheckResult) => void,
  ): () => void {
    const held = this.#backoff.held(service);
    if (held) {
      const timer = setTimeout(() => onEnd(held), 0);
      return () => clearTimeout(timer);
    }
    const call = this.#client.makeServerStreamRequest(
      WATCH_METHOD,
      (s: string) => Buffer.from(encodeHealthCheckRequest(s)),
      (b: Buffer) => decodeHealthCheckResponse(b),
      service,
      this.#metadata(true),
      {},
    );
    let ended = false;
    const end = (result: CheckResult) => {
      if (ended) return;
      ended = true;
      onEnd(result);
    };
    call.on("data", (status: number) => {
      const result: CheckResult = { service, outcome: outcomeOfStatus(status) };
      this.#backoff.record(result, false);
      onStatus(result);
    });
    call.on("error", (err: grpc.ServiceError) => {
      if (ended) return; // cancelled by us
      this.#healDeadConnection(err);
      // A stream that cannot start or loses its connection says UNAVAILABLE.
      const outcome = err.code === grpc.status.UNAVAILABLE
        ? "CONNECTION_FAILED"
        : outcomeOfError(err);
      const result: CheckResult = { service, outcome, detail: grpcErrorDetail(err) };
      this.#backoff.record(result, droppedConnection(err));
      end(result);
    });
    call.on("end", () => end({ service, outcome: "RPC_ERROR", detail: "watch stream ended" }));
    return () => {
      ended = true;
      call.cancel();
    };
  }

  #metadata(waitForReady = false): grpc.Metadata {
    const md = new grpc.Metadata(waitForReady ? { waitForReady: true } : undefined);
    for (const [name, value] of this.#opts.rpcHeaders) md.add(name, value);
    return md;
  }

  /** Waits until the channel is READY or has failed to connect, within the connect timeout. */
  #waitReady(signal?: AbortSignal): Promise<ReadyResult> {
    const channel = this.#client.getChannel();
    const deadline = Date.now() + this.#opts.connectTimeoutMs;
    return new Promise((resolve) => {
      let settled = false;
      const settle = (r: ReadyResult) => {
        if (settled) return;
        settled = true;
        signal?.removeEventListener("abort", onAbort);
        resolve(r);
      };
      const onAbort = () => settle({ ok: false, detail: "cancelled" });
      if (signal?.aborted) return onAbort();
      signal?.addEventListener("abort", onAbort, { once: true });
      const step = () => {
        if (settled) return;
        const state = channel.getConnectivityState(true);
        // In TRANSIENT_FAILURE the Check call fails fast with the connection's real error.
        if (
          state === grpc.connectivityState.READY ||
          state === grpc.connectivityState.TRANSIENT_FAILURE
        ) {
          return settle({ ok: true });
        }
        if (state === grpc.connectivityState.SHUTDOWN) {
          return settle({ ok: false, detail: "channel closed" });
        }
        channel.watchConnectivityState(state, deadline, (err?: Error) => {
          if (err) settle({ ok: false, detail: CONNECT_TIMEOUT });
          else step();
        });
      };
      step();
    });
  }

  /**
   * One unary health RPC within the RPC timeout: the decoded answer, or the failure classified
   * as a result for `service`. Every end goes through the dropped-connection backoff.
   */
  #call<T>(
    method: string,
    request: Uint8Array,
    decode: (b: Uint8Array) => T,
    service: string,
    signal?: AbortSignal,
  ): Promise<{ value: T } | { failure: CheckResult }> {
    return new Promise((resolve) => {
      let call: grpc.ClientUnaryCall | undefined = undefined;
      const onAbort = () => call?.cancel();
      call = this.#client.makeUnaryRequest(
        method,
        (b: Uint8Array) => Buffer.from(b),
        (b: Buffer) => decode(b),
        request,
        this.#metadata(),
        { deadline: Date.now() + this.#opts.rpcTimeoutMs },
        (err: grpc.ServiceError | null, value?: T) => {
          signal?.removeEventListener("abort", onAbort);
          if (!err) {
            // An answer from the upstream ends the backoff, whatever it said.
            this.#backoff.record({ service, outcome: "SERVING" }, false);
            return resolve({ value: value as T });
          }
          const failure = this.#failure(err, service);
          this.#backoff.record(failure, droppedConnection(err));
          resolve({ failure });
        },
      );
      if (signal?.aborted) call.cancel();
      else signal?.addEventListener("abort", onAbort, { once: true });
    });
  }

  /** What a gRPC error on a unary health RPC says about `service`. */
  #failure(err: grpc.ServiceError, service: string): CheckResult {
    const noConnection = err.code === grpc.status.UNAVAILABLE && NO_CONNECTION.exec(err.details);
    if (noConnection) {
      return { service, outcome: "CONNECTION_FAILED", detail: connectionCause(noConnection[1]) };
    }
    // A server that is shutting down refuses new streams without processing them, and a
    // name that does not resolve was never reached: both are connection failures.
    if (
      err.code === grpc.status.UNAVAILABLE &&
      (err.details === "Stream refused by server" || UNRESOLVED.test(err.details))
    ) {
      return { service, outcome: "CONNECTION_FAILED", detail: grpcErrorDetail(err) };
    }
    this.#healDeadConnection(err);
    return { service, outcome: outcomeOfError(err), detail: grpcErrorDetail(err) };
  }
}

/**
 * The validity period of the certificate a TLS upstream presents, read without verifying it;
 * undefined when the target is not host:port or nothing could be read in time.
 */
function peerCertificateValidity(
  target: string,
  opts: UpstreamOptions,
): Promise<{ from: Date; to: Date } | undefined> {
  const m = /^(?:dns:\/\/\/)?(?:\[([^\]]+)\]|([^:/]+)):(\d+)$/.exec(target);
  if (!m) return Promise.resolve(undefined);
  const host = m[1] ?? m[2];
  const name = opts.tlsServerName || host;
  return new Promise((resolve) => {
    const socket = tls.connect({
      host,
      port: Number(m[3]),
      ...(isIP(name) ? {} : { servername: name }),
      rejectUnauthorized: false,
      ALPNProtocols: ["h2"],
    });
    const done = (v: { from: Date; to: Date } | undefined) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(v);
    };
    const timer = setTimeout(() => done(undefined), opts.connectTimeoutMs);
    socket.once("secureConnect", () => {
      const cert = socket.getPeerCertificate();
      done(
        cert?.valid_to
          ? { from: new Date(cert.valid_from), to: new Date(cert.valid_to) }
          : undefined,
      );
    });
    socket.once("error", () => done(undefined));
  });
}
