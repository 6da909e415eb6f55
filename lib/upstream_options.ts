/**
 * What both upstream clients share (the grpc-js channel in `upstream.ts` and the native fetch
 * fast path in `fast_check.ts`): the options that say how to reach the upstream, the dial
 * target, and how a status number becomes an outcome. It imports nothing from grpc-js or Node,
 * so the probe can load it without paying for either.
 *
 * @module
 */

import type { Config } from "./flags.ts";
import { servingStatusName } from "./health_codec.ts";
import type { Outcome } from "./status.ts";

/** How to reach the upstream: the flag values that concern it (see `Config` for each). */
export interface UpstreamOptions extends
  Pick<
    Config,
    | "addr"
    | "tls"
    | "tlsNoVerify"
    | "tlsCaCert"
    | "tlsClientCert"
    | "tlsClientKey"
    | "tlsServerName"
    | "userAgent"
    | "connectTimeoutMs"
    | "rpcTimeoutMs"
    | "gzip"
  > {
  rpcHeaders: readonly (readonly [string, string])[];
  /**
   * Reconnect quickly after the upstream goes away (server mode keeps one channel for its
   * whole life; grpc-js's default backoff would hide a restarted upstream for seconds).
   */
  fastReconnect?: boolean;
}

/** A problem with the upstream options that the user must fix (an invalid argument). */
export class UpstreamConfigError extends Error {
  override name = "UpstreamConfigError";
}

/** The `detail` of a CONNECTION_FAILED result when the connect timeout ran out. */
export const CONNECT_TIMEOUT = "connect timeout";

/** The path of the health check method. */
export const CHECK_METHOD = "/grpc.health.v1.Health/Check";

/** The dial target for an `-addr` value: `:port` dials localhost, as grpc-health-probe does. */
export function dialTarget(addr: string): string {
  return addr.startsWith(":") ? `localhost${addr}` : addr;
}

/** The outcome of a status number; one the proto does not define is not SERVING: UNKNOWN. */
export function outcomeOfStatus(status: number): Outcome {
  const name = servingStatusName(status);
  return status >= 0 && status <= 3 ? name : "UNKNOWN";
}
