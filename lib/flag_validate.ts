/**
 * Every rule on the combination of flags, in grpc-health-probe's order, each with its own
 * one-line message that spells the flags as the user did.
 *
 * @module
 */

import { splitListenAddr } from "./address.ts";
import { formatGoDuration } from "./duration.ts";
import type { Config, FlagKey } from "./flag_table.ts";
import { specByKey } from "./flag_scan.ts";
import { quote } from "./flag_text.ts";

/** Why `addr` is not a listen address (host:port, :port, [v6]:port), or undefined. */
function checkListenAddr(addr: string): string | undefined {
  const split = splitListenAddr(addr);
  return "error" in split ? split.error : undefined;
}

/** Why `path` is not a URL path to serve, or undefined. */
function checkPath(path: string): string | undefined {
  if (!path.startsWith("/")) return `must start with "/", e.g. /${path.replace(/^\/*/, "")}`;
  if (/[\s?#\p{Cc}]/u.test(path)) return "must not contain spaces, control characters, ? or #";
  return undefined;
}

/**
 * Every rule on the combination of flags, in grpc-health-probe's order (then
 * grpc_health_proxy's, then this program's), returning the first broken one as a message that
 * uses the user's spelling of each flag. Mode scope, value syntax, services and headers were
 * checked while parsing.
 */
export function validate(c: Config, spelled: ReadonlyMap<string, string>): string | undefined {
  /**
   * How to write flag `key` in a message: as typed; else in the alias family of `like` (so
   * -grpc-ca-cert pairs with -grpctls); else the mode's family.
   */
  const n = (key: FlagKey, like?: FlagKey): string => {
    const typed = spelled.get(key);
    if (typed !== undefined) return "-" + typed;
    const names = specByKey.get(key)!.names;
    const likeTyped = like === undefined ? undefined : spelled.get(like);
    const family = likeTyped !== undefined
      ? specByKey.get(like!)!.names.indexOf(likeTyped)
      : c.mode === "probe"
      ? 0
      : 1;
    return "-" + names[Math.min(family, names.length - 1)];
  };
  const server = c.mode === "server";

  if (c.addr === "") {
    return `${n("addr")} not specified: give the gRPC server to check, e.g. ${
      n("addr")
    }=localhost:50051`;
  }
  if (/\p{Cc}/u.test(c.addr) || c.addr.trim() !== c.addr) {
    return `invalid ${n("addr")} ${quote(c.addr)}: remove the spaces or control characters`;
  }
  if (server && c.httpListenAddr === "") {
    return `${n("httpListenAddr")} not specified: give the address to serve on, e.g. ${
      n("httpListenAddr")
    }=:8080`;
  }
  if (c.connectTimeoutMs <= 0) {
    return `${n("connectTimeoutMs")} must be greater than zero (specified: ${
      formatGoDuration(c.connectTimeoutMs)
    })`;
  }
  if (c.rpcTimeoutMs <= 0) {
    return `${n("rpcTimeoutMs")} must be greater than zero (specified: ${
      formatGoDuration(c.rpcTimeoutMs)
    })`;
  }
  if (!/^[\x20-\x7e]*$/.test(c.userAgent)) {
    return `invalid ${n("userAgent")} ${quote(c.userAgent)}: must be printable ASCII`;
  }
  // TLS settings need -tls (grpc-health-probe's rules, with grpc_health_proxy's spellings).
  const tlsOnly: [FlagKey, boolean][] = [
    ["tlsNoVerify", c.tlsNoVerify],
    ["tlsCaCert", c.tlsCaCert !== ""],
    ["tlsClientCert", c.tlsClientCert !== ""],
    ["tlsClientKey", c.tlsClientKey !== ""],
    ["tlsServerName", c.tlsServerName !== ""],
  ];
  for (const [key, set] of tlsOnly) {
    if (!c.tls && set) return `specified ${n(key)} without specifying ${n("tls", key)}`;
  }
  if (c.tlsClientCert !== "" && c.tlsClientKey === "") {
    return `specified ${n("tlsClientCert")} without specifying ${
      n("tlsClientKey", "tlsClientCert")
    }`;
  }
  if (c.tlsClientCert === "" && c.tlsClientKey !== "") {
    return `specified ${n("tlsClientKey")} without specifying ${
      n("tlsClientCert", "tlsClientKey")
    }`;
  }
  if (c.tlsNoVerify && c.tlsCaCert !== "") {
    return `cannot specify ${n("tlsCaCert")} with ${
      n("tlsNoVerify", "tlsCaCert")
    } (CA cert would not be used)`;
  }
  if (c.tlsNoVerify && c.tlsServerName !== "") {
    return `cannot specify ${n("tlsServerName")} with ${
      n("tlsNoVerify", "tlsServerName")
    } (server name would not be used)`;
  }
  if (c.list && c.servicesFixed) {
    return `cannot specify ${n("services")} with ${n("list")}: -list shows every service the ` +
      `upstream lists; drop ${n("services")}, or drop -list to check that service`;
  }
  if (!server) return undefined;

  // Server mode: the HTTP(S) listener.
  if ((c.httpsListenCert === "") !== (c.httpsListenKey === "")) {
    return "must specify both -https-listen-cert and -https-listen-key (or neither, for HTTP)";
  }
  if (c.httpsSelfSigned && c.httpsListenCert !== "") {
    return "cannot specify -https-self-signed with -https-listen-cert/-https-listen-key; " +
      "choose one certificate source";
  }
  if (c.httpsListenVerify && c.httpsListenCa === "") {
    return "specified -https-listen-verify without specifying -https-listen-ca " +
      "(the CA certificates that sign client certificates)";
  }
  if (!c.httpsListenVerify && c.httpsListenCa !== "") {
    return "specified -https-listen-ca without specifying -https-listen-verify " +
      "(add -https-listen-verify to require client certificates)";
  }
  if (c.httpsListenVerify && c.httpsListenCert === "" && !c.httpsSelfSigned) {
    return "-https-listen-verify needs HTTPS: add -https-listen-cert and -https-listen-key, " +
      "or -https-self-signed";
  }
  const listenProblem = checkListenAddr(c.httpListenAddr);
  if (listenProblem) {
    return `invalid -http-listen-addr ${quote(c.httpListenAddr)}: ${listenProblem}`;
  }
  if (c.metricsHttpListenAddr !== "") {
    const p = checkListenAddr(c.metricsHttpListenAddr);
    if (p) return `invalid -metrics-http-listen-addr ${quote(c.metricsHttpListenAddr)}: ${p}`;
    if (c.metricsHttpListenAddr === c.httpListenAddr && !/:0$/.test(c.httpListenAddr)) {
      return `-metrics-http-listen-addr must differ from -http-listen-addr (both ${
        quote(c.httpListenAddr)
      }); use another port, or -metrics-http-listen-addr= to disable metrics`;
    }
  }
  const paths: [string, string][] = [
    ["http-listen-path", c.httpListenPath],
    ["metrics-http-path", c.metricsHttpPath],
  ];
  if (c.httpLivenessPath !== "") paths.push(["http-liveness-path", c.httpLivenessPath]);
  if (c.httpListPath !== "") paths.push(["http-list-path", c.httpListPath]);
  if (c.statusHttpPath !== "") paths.push(["status-http-path", c.statusHttpPath]);
  for (const [flag, path] of paths) {
    const p = checkPath(path);
    if (p) return `invalid -${flag} ${quote(path)}: ${p}`;
  }
  // Each path of the health listener answers one thing: no two may be the same.
  const healthPaths = paths.filter(([flag]) =>
    flag !== "metrics-http-path" && flag !== "status-http-path"
  );
  for (let i = 0; i < healthPaths.length; i++) {
    for (let j = i + 1; j < healthPaths.length; j++) {
      if (healthPaths[i][1] === healthPaths[j][1]) {
        return `-${healthPaths[j][0]} must differ from -${healthPaths[i][0]} (both ${
          quote(healthPaths[i][1])
        })`;
      }
    }
  }
  // Only when asked for: a -metrics-http-path of /status from before the page keeps working
  // (the metrics win there; the page is still at /status.json or moves with this flag).
  if (
    spelled.has("statusHttpPath") && c.statusHttpPath !== "" &&
    [c.statusHttpPath, `${c.statusHttpPath}.json`].includes(c.metricsHttpPath)
  ) {
    return `-status-http-path ${quote(c.statusHttpPath)} would hide -metrics-http-path ${
      quote(c.metricsHttpPath)
    }; choose another path, or -status-http-path= to disable the status page`;
  }
  // Background checking.
  if (c.checkIntervalMs < 0) {
    return `-check-interval must not be negative (specified: ${
      formatGoDuration(c.checkIntervalMs)
    }); use 0 to check on each request`;
  }
  if (c.healthyThreshold < 1) {
    return `-healthy-threshold must be at least 1 (specified: ${c.healthyThreshold})`;
  }
  if (c.unhealthyThreshold < 1) {
    return `-unhealthy-threshold must be at least 1 (specified: ${c.unhealthyThreshold})`;
  }
  return undefined;
}
