/**
 * Command-line flags: one table ({@link flagTable}) drives parsing, `-h` usage and the README
 * flag reference. The grammar is Go's `flag` package; the flags are the union of
 * grpc-health-probe's and grpc_health_proxy v1.2.1's (both spellings everywhere), plus this
 * program's own. Every validation rule is in {@link validate}, in grpc-health-probe's order, each
 * with its own one-line message. Everything here is a pure function of its arguments.
 *
 * @module
 */

import { splitListenAddr } from "./address.ts";
import { formatGoDuration, parseGoDuration } from "./duration.ts";

/** The three ways the program runs (see the SPEC's mode table). */
export type Mode = "server" | "probe" | "runcli";

/** Everything the flags say, with defaults applied. */
export interface Config {
  mode: Mode;
  /** `-addr` / `-grpcaddr`; "" if not given (only possible with `help` or `version`). */
  addr: string;
  /** `-service` / `-service-name`: repeatable and comma-separated, deduplicated in order. */
  services: string[];
  /** Whether `-service`/`-service-name` was given at all (server mode then pins the service). */
  serviceFlagSet: boolean;
  tls: boolean;
  tlsNoVerify: boolean;
  tlsCaCert: string;
  tlsClientCert: string;
  tlsClientKey: string;
  tlsServerName: string;
  /** Default `grpc_health_probe` in probe mode, `grpc_health_proxy` otherwise. */
  userAgent: string;
  connectTimeoutMs: number;
  rpcTimeoutMs: number;
  /** `-rpc-header 'name: value'`: names lower-cased and trimmed, values trimmed. */
  rpcHeaders: [string, string][];
  gzip: boolean;
  /** glog-style level: `-v` is 1, `-v=N` / `-v N` is N. */
  verbosity: number;
  version: boolean;
  help: boolean;
  httpListenAddr: string;
  httpListenPath: string;
  httpsListenCert: string;
  httpsListenKey: string;
  httpsListenVerify: boolean;
  httpsListenCa: string;
  httpsSelfSigned: boolean;
  /** "" disables the metrics listener. */
  metricsHttpListenAddr: string;
  metricsHttpPath: string;
  jsonLog: boolean;
  debug: boolean;
  /** "" means stderr. */
  logTarget: string;
  /** 0 = off (check on each request). */
  checkIntervalMs: number;
  healthyThreshold: number;
  unhealthyThreshold: number;
  watch: boolean;
  /** "" = off. */
  httpLivenessPath: string;
}

/**
 * What {@link parseFlags} returns. On failure, `message` is one line that names the flag as the
 * user spelled it and says how to fix it; `mode` picks the exit code ({@link invalidArgumentExit}).
 */
export type ParseResult =
  | { ok: true; config: Config }
  | { ok: false; mode: Mode; message: string };

/**
 * How a flag takes its value:
 * - `bool`: `-b`, `-b=true|false|1|0|t|f|...`, never `-b false`;
 * - `string`, `duration` (Go syntax), `int` (decimal): `-f=value` or `-f value`;
 * - `list`: like `string`, repeatable, each value split by the flag's `parseList`;
 * - `verbosity`: `-v`, `-v=N` or `-v N` (the next argument only if it is all digits);
 * - `unsupported`: recognised, rejected when enabled (`-alts`, `-spiffe`);
 * - `ignored`: accepted for compatibility and dropped (glog's flags).
 */
export type FlagKind =
  | "bool"
  | "string"
  | "duration"
  | "int"
  | "list"
  | "verbosity"
  | "unsupported"
  | "ignored";

/** Usage and README sections, in display order. */
export type FlagGroup = "upstream" | "tls" | "server" | "background" | "logging" | "other";

/** The {@link Config} fields flags fill, plus the keys of flags that fill none. */
export type FlagKey = Exclude<keyof Config, "mode" | "serviceFlagSet"> | "runcli" | "none";

/** A parsed list value, or why the value is wrong. */
export type ListParse = { items: readonly unknown[] } | { error: string };

/** One row of {@link flagTable}. */
export interface FlagSpec {
  /**
   * Every spelling, without dashes. For the aliases of the SPEC's table the first is
   * grpc-health-probe's and the second grpc_health_proxy's; messages pick the same family.
   */
  readonly names: readonly string[];
  readonly kind: FlagKind;
  /** Where the value goes. */
  readonly key: FlagKey;
  /** The value when the flag is not given (milliseconds for durations). */
  readonly default: boolean | string | number | readonly string[];
  /** Defaults that differ by mode (the user agent). */
  readonly modeDefaults?: Readonly<Partial<Record<Mode, string>>>;
  /** How usage shows the default, when the raw value would mislead (`0` = off). */
  readonly defaultText?: string;
  /** Must be given (unless `-h` or `-version`). */
  readonly required?: boolean;
  /** Placeholder for the value in usage (`-addr host:port`); none for booleans. */
  readonly valueName?: string;
  readonly help: string;
  readonly group: FlagGroup;
  /** The modes the flag may be given in (set to a true/non-false value) without an error. */
  readonly modes: readonly Mode[];
  /** `ignored`/`unsupported` only: whether the flag takes a value (else it is a boolean). */
  readonly takesValue?: boolean;
  /** `list` only: turns one value into items, or says what is wrong with it. */
  readonly parseList?: (raw: string) => ListParse;
}

const ALL: readonly Mode[] = ["server", "probe", "runcli"];
/** grpc_health_proxy v1.2.1's listener flags: v1.2.1 accepted (and ignored) them with -runcli. */
const SERVER_V1: readonly Mode[] = ["server", "runcli"];
/** This program's own server-only flags: an error anywhere else. */
const SERVER: readonly Mode[] = ["server"];

const MAX_SERVICE_NAME_BYTES = 256;
const utf8 = new TextEncoder();

/**
 * Why `name` is not an acceptable health service name, or `undefined` if it is.
 *
 * Rule (used for flag values and `?serviceName=`): at most 256 bytes of UTF-8, and only
 * printable characters: Unicode letters, marks, numbers, punctuation and symbols. So no
 * whitespace of any kind, no control characters (C0, DEL, C1), no format characters
 * (zero-width, bidi overrides), no unpaired surrogates. Real gRPC service names
 * (`grpc.health.v1.Health`, `package.Service`) pass; anything that could forge a log line or
 * hide in one does not. `""` (overall server health) is valid.
 */
export function validateServiceName(name: string): string | undefined {
  const bytes = utf8.encode(name).length;
  if (bytes > MAX_SERVICE_NAME_BYTES) {
    return `service name is ${bytes} bytes long; the limit is ${MAX_SERVICE_NAME_BYTES}`;
  }
  let pos = 0;
  for (const ch of name) {
    if (!/^[\p{L}\p{M}\p{N}\p{P}\p{S}]$/u.test(ch)) {
      const cp = ch.codePointAt(0)!.toString(16).toUpperCase().padStart(4, "0");
      return `service name has a space or non-printable character (U+${cp}) at position ${pos}`;
    }
    pos++;
  }
  return undefined;
}

/** `-service` values: comma-separated names; `""` alone is the server's overall health. */
function parseServiceList(raw: string): ListParse {
  if (raw === "") return { items: [""] };
  const items = raw.split(",").map((s) => s.trim());
  for (const item of items) {
    if (item === "") {
      return { error: 'empty name in the list; give "" alone (-service=) for overall health' };
    }
    const reason = validateServiceName(item);
    if (reason) return { error: reason };
  }
  return { items };
}

/** Headers gRPC or HTTP/2 set themselves, or forbid (node's http2 throws on these). */
const RESERVED_HEADERS: ReadonlyMap<string, string> = new Map([
  ["user-agent", "use -user-agent to set the user agent"],
  ["content-type", "gRPC sets content-type itself"],
  ["te", "gRPC sets te itself"],
  ["connection", "connection-specific headers are not allowed in HTTP/2"],
  ["keep-alive", "connection-specific headers are not allowed in HTTP/2"],
  ["proxy-connection", "connection-specific headers are not allowed in HTTP/2"],
  ["transfer-encoding", "connection-specific headers are not allowed in HTTP/2"],
  ["upgrade", "connection-specific headers are not allowed in HTTP/2"],
]);

/**
 * Parses one `-rpc-header` value, `name: value`, as grpc-health-probe does (split at the first
 * colon), but checked up front against gRPC's metadata rules so a bad header is an invalid
 * argument, not a failed RPC: the name is trimmed and lower-cased and must be a gRPC metadata
 * key (`a-z 0-9 - _ .`, which is stricter than an HTTP token because grpc-js rejects the rest),
 * not `grpc-*` (reserved), not a pseudo-header, not binary (`-bin`); the value is trimmed and
 * must be printable ASCII (so no CR/LF).
 */
export function parseRpcHeader(raw: string): { header: [string, string] } | { error: string } {
  const example = "e.g. -rpc-header='authorization: Bearer TOKEN'";
  if (raw.trimStart().startsWith(":")) {
    return { error: `pseudo-headers (:authority, :path, ...) are set by gRPC itself` };
  }
  const colon = raw.indexOf(":");
  if (colon < 0) return { error: `expected 'name: value', ${example}` };
  const name = raw.slice(0, colon).trim().toLowerCase();
  const value = raw.slice(colon + 1).trim();
  if (name === "") return { error: `empty header name, ${example}` };
  if (!/^[0-9a-z_.-]+$/.test(name)) {
    return {
      error: `header name ${quote(name)} may only have a-z, 0-9, "-", "_" and "." (gRPC metadata)`,
    };
  }
  if (name.startsWith("grpc-")) {
    return { error: `header names starting with "grpc-" are reserved by gRPC` };
  }
  if (name.endsWith("-bin")) {
    return { error: `binary headers (names ending in "-bin") are not supported` };
  }
  const reserved = RESERVED_HEADERS.get(name);
  if (reserved) return { error: `${quote(name)} cannot be set: ${reserved}` };
  if (!/^[\x20-\x7e]*$/.test(value)) {
    return {
      error: "header value must be printable ASCII (no CR, LF or other control characters)",
    };
  }
  return { header: [name, value] };
}

/**
 * The flags. Order within a group is display order. Validation rules that involve several
 * flags are in {@link validate}.
 */
export const flagTable: readonly FlagSpec[] = [
  // --- upstream ---
  {
    names: ["addr", "grpcaddr"],
    kind: "string",
    key: "addr",
    default: "",
    required: true,
    valueName: "target",
    help: "upstream gRPC server: host:port, :port (localhost), [v6]:port, unix:///abs/path, " +
      "unix:rel/path or dns:///host:port",
    group: "upstream",
    modes: ALL,
  },
  {
    names: ["service", "service-name"],
    kind: "list",
    key: "services",
    default: [""],
    defaultText: '"" (overall server health)',
    valueName: "name",
    help: "service to check. Repeat or comma-separate to check several: healthy only when all " +
      "are SERVING. In server mode, setting it pins the service (?serviceName= must match); " +
      "otherwise ?serviceName= picks it.",
    group: "upstream",
    modes: ALL,
    parseList: parseServiceList,
  },
  {
    names: ["user-agent"],
    kind: "string",
    key: "userAgent",
    default: "grpc_health_proxy",
    modeDefaults: { probe: "grpc_health_probe" },
    valueName: "string",
    help: "user-agent header of health check requests",
    group: "upstream",
    modes: ALL,
  },
  {
    names: ["connect-timeout"],
    kind: "duration",
    key: "connectTimeoutMs",
    default: 1000,
    valueName: "duration",
    help: "how long to wait for the connection to the upstream (Go duration: 300ms, 1.5s, 1m)",
    group: "upstream",
    modes: ALL,
  },
  {
    names: ["rpc-timeout"],
    kind: "duration",
    key: "rpcTimeoutMs",
    default: 1000,
    valueName: "duration",
    help: "how long to wait for the health check RPC",
    group: "upstream",
    modes: ALL,
  },
  {
    names: ["rpc-header"],
    kind: "list",
    key: "rpcHeaders",
    default: [],
    valueName: "'name: value'",
    help: "metadata sent with the health check RPC; repeat for several",
    group: "upstream",
    modes: ALL,
    parseList: (raw) => {
      const r = parseRpcHeader(raw);
      return "error" in r ? r : { items: [r.header] };
    },
  },
  {
    names: ["gzip"],
    kind: "bool",
    key: "gzip",
    default: false,
    help: "compress the health check RPC with gzip",
    group: "upstream",
    modes: ALL,
  },
  // --- upstream TLS ---
  {
    names: ["tls", "grpctls"],
    kind: "bool",
    key: "tls",
    default: false,
    help: "use TLS to the upstream (default: plaintext)",
    group: "tls",
    modes: ALL,
  },
  {
    names: ["tls-no-verify", "grpc-tls-no-verify"],
    kind: "bool",
    key: "tlsNoVerify",
    default: false,
    help: "(with -tls) do not verify the upstream's certificate (INSECURE)",
    group: "tls",
    modes: ALL,
  },
  {
    names: ["tls-ca-cert", "grpc-ca-cert"],
    kind: "string",
    key: "tlsCaCert",
    default: "",
    valueName: "file",
    help: "(with -tls) PEM file of CA certificates to verify the upstream (replaces system roots)",
    group: "tls",
    modes: ALL,
  },
  {
    names: ["tls-client-cert", "grpc-client-cert"],
    kind: "string",
    key: "tlsClientCert",
    default: "",
    valueName: "file",
    help: "(with -tls) PEM client certificate for mTLS to the upstream (needs -tls-client-key)",
    group: "tls",
    modes: ALL,
  },
  {
    names: ["tls-client-key", "grpc-client-key"],
    kind: "string",
    key: "tlsClientKey",
    default: "",
    valueName: "file",
    help: "(with -tls) PEM private key of -tls-client-cert",
    group: "tls",
    modes: ALL,
  },
  {
    names: ["tls-server-name", "grpc-sni-server-name"],
    kind: "string",
    key: "tlsServerName",
    default: "",
    valueName: "name",
    help: "(with -tls) server name for SNI and certificate verification (default: from target)",
    group: "tls",
    modes: ALL,
  },
  {
    names: ["alts"],
    kind: "unsupported",
    key: "none",
    default: false,
    help: "grpc-health-probe's ALTS: not supported, rejected (use -tls)",
    group: "tls",
    modes: ALL,
    takesValue: false,
  },
  {
    names: ["spiffe"],
    kind: "unsupported",
    key: "none",
    default: false,
    help: "grpc-health-probe's SPIFFE: not supported, rejected (use -tls with -tls-client-cert " +
      "and -tls-client-key)",
    group: "tls",
    modes: ALL,
    takesValue: false,
  },
  // --- server mode ---
  {
    names: ["http-listen-addr"],
    kind: "string",
    key: "httpListenAddr",
    default: "localhost:8080",
    valueName: "host:port",
    help: "where to serve health checks: host:port, :port (all interfaces), [v6]:port",
    group: "server",
    modes: SERVER_V1,
  },
  {
    names: ["http-listen-path"],
    kind: "string",
    key: "httpListenPath",
    default: "/",
    valueName: "path",
    help: "URL path of the health check (readiness); GET and HEAD",
    group: "server",
    modes: SERVER_V1,
  },
  {
    names: ["https-listen-cert"],
    kind: "string",
    key: "httpsListenCert",
    default: "",
    valueName: "file",
    help: "PEM certificate: serve HTTPS (needs -https-listen-key; re-read when it changes)",
    group: "server",
    modes: SERVER_V1,
  },
  {
    names: ["https-listen-key"],
    kind: "string",
    key: "httpsListenKey",
    default: "",
    valueName: "file",
    help: "PEM private key of -https-listen-cert",
    group: "server",
    modes: SERVER_V1,
  },
  {
    names: ["https-listen-verify"],
    kind: "bool",
    key: "httpsListenVerify",
    default: false,
    help: "require client certificates signed by -https-listen-ca (mTLS; needs HTTPS)",
    group: "server",
    modes: SERVER_V1,
  },
  {
    names: ["https-listen-ca"],
    kind: "string",
    key: "httpsListenCa",
    default: "",
    valueName: "file",
    help: "(with -https-listen-verify) PEM CA certificates that sign client certificates",
    group: "server",
    modes: SERVER_V1,
  },
  {
    names: ["https-self-signed"],
    kind: "bool",
    key: "httpsSelfSigned",
    default: false,
    help: "serve HTTPS with an in-memory self-signed certificate (for probers that do not verify)",
    group: "server",
    modes: SERVER,
  },
  {
    names: ["http-liveness-path"],
    kind: "string",
    key: "httpLivenessPath",
    default: "",
    defaultText: "off",
    valueName: "path",
    help: "URL path answering 200 whenever the upstream answers the health RPC at all " +
      "(liveness), 503 when it cannot be reached in time",
    group: "server",
    modes: SERVER,
  },
  {
    names: ["metrics-http-listen-addr"],
    kind: "string",
    key: "metricsHttpListenAddr",
    default: "localhost:9000",
    valueName: "host:port",
    help: 'where to serve Prometheus metrics; "" disables',
    group: "server",
    modes: SERVER_V1,
  },
  {
    names: ["metrics-http-path"],
    kind: "string",
    key: "metricsHttpPath",
    default: "/metrics",
    valueName: "path",
    help: "URL path of the metrics",
    group: "server",
    modes: SERVER_V1,
  },
  // --- background checking ---
  {
    names: ["check-interval"],
    kind: "duration",
    key: "checkIntervalMs",
    default: 0,
    defaultText: "0 (off)",
    valueName: "duration",
    help: "check the upstream in the background this often and answer from memory; 0 checks " +
      "on each request (concurrent requests share one check)",
    group: "background",
    modes: SERVER,
  },
  {
    names: ["healthy-threshold"],
    kind: "int",
    key: "healthyThreshold",
    default: 1,
    valueName: "n",
    help: "consecutive SERVING results before the answer turns healthy",
    group: "background",
    modes: SERVER,
  },
  {
    names: ["unhealthy-threshold"],
    kind: "int",
    key: "unhealthyThreshold",
    default: 1,
    valueName: "n",
    help: "consecutive failed results before the answer turns unhealthy",
    group: "background",
    modes: SERVER,
  },
  {
    names: ["watch"],
    kind: "bool",
    key: "watch",
    default: false,
    help: "follow the upstream with the Health/Watch stream (polls if it is UNIMPLEMENTED)",
    group: "background",
    modes: SERVER,
  },
  // --- logging ---
  {
    names: ["v"],
    kind: "verbosity",
    key: "verbosity",
    default: 0,
    valueName: "[N]",
    help: "verbose logs: -v, or a glog level as -v=N or -v N (N > 0 is verbose)",
    group: "logging",
    modes: ALL,
  },
  {
    names: ["jsonLog"],
    kind: "bool",
    key: "jsonLog",
    default: false,
    help: "log JSON lines instead of text",
    group: "logging",
    modes: ALL,
  },
  {
    names: ["debug"],
    kind: "bool",
    key: "debug",
    default: false,
    help: "log debug lines",
    group: "logging",
    modes: ALL,
  },
  {
    names: ["logTarget"],
    kind: "string",
    key: "logTarget",
    default: "",
    defaultText: "stderr",
    valueName: "file",
    help: "append log lines to this file instead of stderr",
    group: "logging",
    modes: ALL,
  },
  {
    names: ["logtostderr"],
    kind: "ignored",
    key: "none",
    default: false,
    help: "glog flag, accepted and ignored (logs go to stderr unless -logTarget)",
    group: "logging",
    modes: ALL,
    takesValue: false,
  },
  {
    names: ["alsologtostderr"],
    kind: "ignored",
    key: "none",
    default: false,
    help: "glog flag, accepted and ignored",
    group: "logging",
    modes: ALL,
    takesValue: false,
  },
  {
    names: ["stderrthreshold"],
    kind: "ignored",
    key: "none",
    default: "",
    valueName: "severity",
    help: "glog flag, accepted and ignored",
    group: "logging",
    modes: ALL,
    takesValue: true,
  },
  {
    names: ["log_dir"],
    kind: "ignored",
    key: "none",
    default: "",
    valueName: "dir",
    help: "glog flag, accepted and ignored (use -logTarget to log to a file)",
    group: "logging",
    modes: ALL,
    takesValue: true,
  },
  // --- other ---
  {
    names: ["runcli"],
    kind: "bool",
    key: "runcli",
    default: false,
    help: "check once and exit with grpc_health_proxy's CLI exit codes instead of serving HTTP",
    group: "other",
    modes: SERVER_V1,
  },
  {
    names: ["version"],
    kind: "bool",
    key: "version",
    default: false,
    help: "print the version and exit",
    group: "other",
    modes: ALL,
  },
  {
    names: ["h", "help"],
    kind: "bool",
    key: "help",
    default: false,
    help: "print this help and exit",
    group: "other",
    modes: ALL,
  },
];

const GROUP_TITLES: Readonly<Record<FlagGroup, string>> = {
  upstream: "Upstream (the gRPC server to check)",
  tls: "Upstream TLS",
  server: "Server mode (HTTP(S) listener and metrics)",
  background: "Background checking (server mode)",
  logging: "Logging",
  other: "Other",
};

const GROUPS: readonly FlagGroup[] = [
  "upstream",
  "tls",
  "server",
  "background",
  "logging",
  "other",
];

const specByName: ReadonlyMap<string, FlagSpec> = new Map(
  flagTable.flatMap((spec) => spec.names.map((n) => [n, spec] as const)),
);
const specByKey: ReadonlyMap<FlagKey, FlagSpec> = new Map(
  flagTable.filter((s) => s.key !== "none").map((s) => [s.key, s] as const),
);

// ---------------------------------------------------------------------------------------------
// Small helpers

/** Quotes a user value for a message: JSON escapes (so one line), long values shortened. */
function quote(s: string): string {
  const short = s.length > 120 ? s.slice(0, 120) + "..." : s;
  return JSON.stringify(short).replace(/[\u0085\u2028\u2029]/g, escapeChar);
}

function escapeChar(c: string): string {
  return "\\u" + c.charCodeAt(0).toString(16).padStart(4, "0");
}

/** A flag name or argument echoed raw (as Go does), but shortened. */
function shorten(s: string): string {
  return s.length > 100 ? s.slice(0, 100) + "..." : s;
}

/** Guarantees one printable line whatever the user typed (names are echoed raw, as Go does). */
function oneLine(message: string): string {
  return message.replace(/[\p{Cc}\u2028\u2029]/gu, escapeChar);
}

/** Go's strconv.ParseBool. */
function parseBool(s: string): boolean | undefined {
  switch (s) {
    case "1":
    case "t":
    case "T":
    case "true":
    case "TRUE":
    case "True":
      return true;
    case "0":
    case "f":
    case "F":
    case "false":
    case "FALSE":
    case "False":
      return false;
  }
  return undefined;
}

function isBoolLike(spec: FlagSpec): boolean {
  return spec.kind === "bool" ||
    ((spec.kind === "unsupported" || spec.kind === "ignored") && !spec.takesValue);
}

function levenshtein(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      cur[j] = Math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = cur;
  }
  return prev[b.length];
}

/** " (did you mean -x?)" for a near miss, so typos get a fix, not just a refusal. */
function suggestion(name: string): string {
  if (name.length > 64) return "";
  let best = "";
  let bestDistance = Infinity;
  for (const candidate of specByName.keys()) {
    const d = levenshtein(name.toLowerCase(), candidate.toLowerCase());
    if (d < bestDistance) {
      best = candidate;
      bestDistance = d;
    }
  }
  const limit = name.length <= 3 ? 1 : name.length <= 8 ? 2 : 3;
  return bestDistance <= limit ? ` (did you mean -${best}?)` : "";
}

// ---------------------------------------------------------------------------------------------
// Scanning: Go's flag grammar, shared by parsing and mode detection

type ScanEvent =
  | { type: "flag"; spec: FlagSpec; name: string; value: string | undefined }
  | { type: "unknown"; name: string }
  | { type: "badSyntax"; arg: string }
  | { type: "needsArgument"; name: string }
  | { type: "positional"; arg: string; afterDashDash: boolean; previous?: ScanEvent };

/**
 * Walks `args` with Go's `flag` grammar: stops at `--` or the first non-flag (`-` alone is
 * one). It keeps going after an unknown flag or bad syntax, so mode detection can still see
 * the rest; the parser stops at the first problem, as Go does.
 */
function* scan(args: readonly string[]): Generator<ScanEvent> {
  let i = 0;
  let previous: ScanEvent | undefined;
  while (i < args.length) {
    const arg = args[i];
    if (arg.length < 2 || arg[0] !== "-") {
      yield { type: "positional", arg, afterDashDash: false, previous };
      return;
    }
    i++;
    let dashes = 1;
    if (arg[1] === "-") {
      dashes = 2;
      if (arg.length === 2) {
        if (i < args.length) yield { type: "positional", arg: args[i], afterDashDash: true };
        return;
      }
    }
    const body = arg.slice(dashes);
    if (body[0] === "-" || body[0] === "=") {
      yield previous = { type: "badSyntax", arg };
      continue;
    }
    const eq = body.indexOf("=");
    const name = eq < 0 ? body : body.slice(0, eq);
    const inline = eq < 0 ? undefined : body.slice(eq + 1);
    const spec = specByName.get(name);
    if (!spec) {
      yield previous = { type: "unknown", name };
      continue;
    }
    if (inline !== undefined || isBoolLike(spec)) {
      yield previous = { type: "flag", spec, name, value: inline };
      continue;
    }
    if (spec.kind === "verbosity") {
      // glog's `-v 10`: take the next argument only when it is a level.
      const next = args[i];
      if (next !== undefined && /^\d+$/.test(next)) {
        i++;
        yield previous = { type: "flag", spec, name, value: next };
      } else {
        yield previous = { type: "flag", spec, name, value: undefined };
      }
      continue;
    }
    if (i >= args.length) {
      yield { type: "needsArgument", name };
      return;
    }
    // As in Go, the next argument is the value even when it starts with "-".
    yield previous = { type: "flag", spec, name, value: args[i++] };
  }
}

// ---------------------------------------------------------------------------------------------
// Mode detection

/** The basename of `invokedAs` without one extension (`.js`, `.exe`, `.ts`), lower-cased. */
function programName(invokedAs: string): string {
  const base = invokedAs.split(/[\\/]/).pop() ?? "";
  return base.replace(/\.[^.]*$/, "").toLowerCase();
}

interface ModeChoice {
  mode: Mode;
  /** Why, for messages about flags that do not apply. */
  reason: string;
}

function chooseMode(args: readonly string[], invokedAs: string | undefined): ModeChoice {
  if (invokedAs !== undefined && programName(invokedAs) === "grpc_health_probe") {
    return { mode: "probe", reason: "probe mode: invoked as grpc_health_probe" };
  }
  let runcli = false;
  let addrSpelling = false;
  let httpListenAddr = false;
  for (const ev of scan(args)) {
    // A trailing `-addr` without its value still says the user writes grpc-health-probe flags.
    if (ev.type === "needsArgument" && ev.name === "addr") addrSpelling = true;
    if (ev.type !== "flag") continue;
    if (ev.spec.key === "runcli") {
      // A malformed value still shows the intent (and the parse error then uses runcli's code).
      runcli = ev.value === undefined || parseBool(ev.value) !== false;
    } else if (ev.name === "addr") {
      addrSpelling = true;
    } else if (ev.spec.key === "httpListenAddr") {
      httpListenAddr = true;
    }
  }
  if (runcli) return { mode: "runcli", reason: "runcli mode: -runcli was given" };
  if (addrSpelling && !httpListenAddr) {
    return {
      mode: "probe",
      reason:
        "probe mode: -addr without -http-listen-addr or -runcli; use -grpcaddr for server mode",
    };
  }
  return { mode: "server", reason: "server mode" };
}

/**
 * The mode for `args` when the program runs as `invokedAs` (a path or name): probe when the
 * name is `grpc_health_probe` (any directory, one extension), runcli with `-runcli`, probe when
 * `-addr` (that spelling) is given without `-http-listen-addr`, else server. Works on argument
 * lists that do not parse, since the invalid-argument exit code depends on the mode.
 */
export function detectMode(args: string[], invokedAs?: string): Mode {
  return chooseMode(args, invokedAs).mode;
}

// ---------------------------------------------------------------------------------------------
// Parsing

/** What the flags set, keyed by {@link FlagKey}, and how each was spelled. */
interface Given {
  values: Map<FlagKey, unknown>;
  spelled: Map<FlagKey, string>;
}

/** Converts one flag value by kind; a string result is the error message. */
function convert(
  spec: FlagSpec,
  name: string,
  value: string | undefined,
): { value: unknown } | string {
  const invalid = (why: string) => `invalid value ${quote(value ?? "")} for flag -${name}: ${why}`;
  switch (spec.kind) {
    case "bool":
    case "unsupported":
    case "ignored": {
      if (!isBoolLike(spec)) return { value }; // a glog flag with a value we drop
      const b = value === undefined ? true : parseBool(value);
      if (b === undefined) {
        return `invalid boolean value ${quote(value ?? "")} for -${name}: ` +
          `use -${name}, -${name}=true or -${name}=false`;
      }
      if (spec.kind === "unsupported" && b) {
        return spec.names[0] === "spiffe"
          ? `-${name} is not supported by grpc_health_proxy; use -tls with -tls-client-cert ` +
            `and -tls-client-key (see -h)`
          : `-${name} is not supported by grpc_health_proxy; use -tls (see -h)`;
      }
      return { value: b };
    }
    case "string":
      return { value };
    case "duration": {
      try {
        return { value: parseGoDuration(value ?? "") };
      } catch (e) {
        return invalid((e as Error).message);
      }
    }
    case "int": {
      const v = value ?? "";
      const n = /^[+-]?\d{1,15}$/.test(v) ? Number(v) : NaN;
      return Number.isSafeInteger(n) ? { value: n } : invalid(`not an integer, e.g. -${name}=3`);
    }
    case "verbosity": {
      if (value === undefined) return { value: 1 };
      const b = parseBool(value);
      if (b !== undefined && !/^\d+$/.test(value)) return { value: b ? 1 : 0 };
      if (/^\d{1,9}$/.test(value)) return { value: Number(value) };
      return invalid(`use -${name}, -${name}=N or -${name} N with a level N >= 0`);
    }
    case "list": {
      const r = spec.parseList!(value ?? "");
      return "error" in r ? invalid(r.error) : { value: r.items };
    }
  }
}

/** Text for the mode-scope error: where the flag does apply. */
function scopeText(spec: FlagSpec): string {
  if (spec.group === "server" || spec.group === "background") return "server mode only";
  return spec.modes.join(" and ") + " modes only";
}

function unexpected(ev: Extract<ScanEvent, { type: "positional" }>): string {
  const prev = ev.previous;
  if (
    prev?.type === "flag" && prev.value === undefined && isBoolLike(prev.spec) &&
    parseBool(ev.arg) !== undefined
  ) {
    return `unexpected argument ${quote(ev.arg)}: give a boolean flag its value with "=", ` +
      `as -${prev.name}=${ev.arg}`;
  }
  const where = ev.afterDashDash ? ' after "--"' : "";
  return `unexpected argument ${quote(ev.arg)}${where}: this program takes flags only (see -h)`;
}

function buildConfig(mode: Mode, given: Given): Config {
  const get = <T>(key: FlagKey): T => {
    if (given.values.has(key)) return given.values.get(key) as T;
    const spec = specByKey.get(key)!;
    return (spec.modeDefaults?.[mode] ?? spec.default) as T;
  };
  return {
    mode,
    addr: get("addr"),
    services: [...new Set(get<string[]>("services"))],
    serviceFlagSet: given.values.has("services"),
    tls: get("tls"),
    tlsNoVerify: get("tlsNoVerify"),
    tlsCaCert: get("tlsCaCert"),
    tlsClientCert: get("tlsClientCert"),
    tlsClientKey: get("tlsClientKey"),
    tlsServerName: get("tlsServerName"),
    userAgent: get("userAgent"),
    connectTimeoutMs: get("connectTimeoutMs"),
    rpcTimeoutMs: get("rpcTimeoutMs"),
    rpcHeaders: [...get<[string, string][]>("rpcHeaders")],
    gzip: get("gzip"),
    verbosity: get("verbosity"),
    version: get("version"),
    help: get("help"),
    httpListenAddr: get("httpListenAddr"),
    httpListenPath: get("httpListenPath"),
    httpsListenCert: get("httpsListenCert"),
    httpsListenKey: get("httpsListenKey"),
    httpsListenVerify: get("httpsListenVerify"),
    httpsListenCa: get("httpsListenCa"),
    httpsSelfSigned: get("httpsSelfSigned"),
    metricsHttpListenAddr: get("metricsHttpListenAddr"),
    metricsHttpPath: get("metricsHttpPath"),
    jsonLog: get("jsonLog"),
    debug: get("debug"),
    logTarget: get("logTarget"),
    checkIntervalMs: get("checkIntervalMs"),
    healthyThreshold: get("healthyThreshold"),
    unhealthyThreshold: get("unhealthyThreshold"),
    watch: get("watch"),
    httpLivenessPath: get("httpLivenessPath"),
  };
}

/**
 * Parses `args` (without the program name) as the program invoked as `invokedAs`.
 *
 * Stops at the first problem, as Go's `flag` does, and returns it as a one-line message. `-h`
 * returns `help` at once (later arguments are not looked at); `-version` parses everything but
 * skips validation. Otherwise the result has passed every rule of {@link validate}.
 */
export function parseFlags(args: string[], invokedAs?: string): ParseResult {
  const { mode, reason } = chooseMode(args, invokedAs);
  const fail = (message: string): ParseResult => ({ ok: false, mode, message: oneLine(message) });
  const given: Given = { values: new Map(), spelled: new Map() };
  for (const ev of scan(args)) {
    switch (ev.type) {
      case "unknown":
        return fail(
          `flag provided but not defined: -${shorten(ev.name)}${suggestion(ev.name)} (see -h)`,
        );
      case "badSyntax":
        return fail(
          `bad flag syntax: ${shorten(ev.arg)} (flags look like -name or -name=value; see -h)`,
        );
      case "needsArgument":
        return fail(`flag needs an argument: -${ev.name} (as -${ev.name}=value; see -h)`);
      case "positional":
        return fail(unexpected(ev));
      case "flag": {
        const { spec, name } = ev;
        // Setting a boolean to false is a no-op, so it is fine in any mode.
        const noop = isBoolLike(spec) && ev.value !== undefined && parseBool(ev.value) === false;
        if (!spec.modes.includes(mode) && !noop) {
          return fail(`-${name} applies to ${scopeText(spec)} (${reason})`);
        }
        const converted = convert(spec, name, ev.value);
        if (typeof converted === "string") return fail(converted);
        if (spec.key === "none") break;
        if (spec.kind === "list") {
          // Repeats add up; the first one replaces the default.
          const prior = (given.values.get(spec.key) as unknown[] | undefined) ?? [];
          given.values.set(spec.key, [...prior, ...(converted.value as unknown[])]);
        } else {
          given.values.set(spec.key, converted.value);
        }
        given.spelled.set(spec.key, name);
        if (spec.key === "help" && converted.value === true) {
          return { ok: true, config: buildConfig(mode, given) };
        }
        break;
      }
    }
  }
  const config = buildConfig(mode, given);
  if (config.version) return { ok: true, config };
  const problem = validate(config, given.spelled);
  return problem === undefined ? { ok: true, config } : fail(problem);
}

// ---------------------------------------------------------------------------------------------
// Validation

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
function validate(c: Config, spelled: ReadonlyMap<FlagKey, string>): string | undefined {
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
  for (const [flag, path] of paths) {
    const p = checkPath(path);
    if (p) return `invalid -${flag} ${quote(path)}: ${p}`;
  }
  if (c.httpLivenessPath !== "" && c.httpLivenessPath === c.httpListenPath) {
    return `-http-liveness-path must differ from -http-listen-path (both ${
      quote(c.httpListenPath)
    })`;
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

// ---------------------------------------------------------------------------------------------
// Usage and reference

/**
 * The default as usage shows it for `mode` (undefined: nothing worth showing, as Go omits zero
 * values), or for the reference (`mode` undefined: every mode's default, "false", "none").
 */
function defaultText(spec: FlagSpec, mode: Mode | undefined): string | undefined {
  if (spec.defaultText !== undefined) return spec.defaultText;
  if (spec.required || spec.kind === "ignored" || spec.kind === "unsupported") return undefined;
  if (spec.modeDefaults) {
    const of = (m: Mode) => spec.modeDefaults![m] ?? String(spec.default);
    if (mode !== undefined) return of(mode);
    const modesOf = new Map<string, Mode[]>();
    for (const m of ALL) modesOf.set(of(m), [...(modesOf.get(of(m)) ?? []), m]);
    return [...modesOf].map(([v, ms]) => `${v} (${ms.join(", ")})`).join("; ");
  }
  const d = spec.default;
  if (spec.kind === "duration") return formatGoDuration(d as number);
  if (mode === undefined) {
    if (d === "" || (Array.isArray(d) && d.length === 0)) return "none";
    return String(d);
  }
  if (d === false || d === "" || d === 0 || (Array.isArray(d) && d.length === 0)) return undefined;
  return String(d);
}

function flagSpellings(spec: FlagSpec): string {
  return spec.names.map((n) => "-" + n).join(", ");
}

function wrap(text: string, width: number, indent: string): string[] {
  const lines: string[] = [];
  let line = "";
  for (const word of text.split(/\s+/)) {
    if (line !== "" && indent.length + line.length + 1 + word.length > width) {
      lines.push(indent + line);
      line = word;
    } else {
      line = line === "" ? word : line + " " + word;
    }
  }
  if (line !== "") lines.push(indent + line);
  return lines;
}

const PROGRAM: Readonly<Record<Mode, string>> = {
  server: "grpc_health_proxy -grpcaddr=host:port [flags]",
  runcli: "grpc_health_proxy -runcli -grpcaddr=host:port [flags]",
  probe: "grpc_health_probe -addr=host:port [flags]",
};

/**
 * The `-h` text: how the mode is chosen, the exit codes, then every flag by group with all
 * spellings, value placeholder, help, default and (when not every mode) where it applies.
 * Defaults that depend on the mode are shown for `mode`.
 */
export function usage(mode: Mode = "server"): string {
  const out: string[] = [
    `Usage: ${PROGRAM[mode]}`,
    "",
    ...wrap(
      "Checks a gRPC server with the gRPC Health Checking Protocol (grpc.health.v1.Health). " +
        "Server mode (default) answers HTTP(S) health checks. -runcli checks once and exits: " +
        "0 SERVING, 1 connection failure, 2 RPC failure or timeout, 3 service not found, " +
        "4 UNIMPLEMENTED, 5 not SERVING, 255 invalid arguments. Probe mode (invoked as " +
        "grpc_health_probe, or -addr without -http-listen-addr or -runcli) checks once and " +
        "exits like grpc-health-probe: 0 SERVING, 1 invalid arguments, 2 connection failure, " +
        "3 RPC failure, 4 not SERVING.",
      100,
      "",
    ),
    "",
    ...wrap(
      "Flags take one or two dashes; values as -flag=value or -flag value; booleans as -flag " +
        "or -flag=false.",
      100,
      "",
    ),
  ];
  for (const group of GROUPS) {
    out.push("", GROUP_TITLES[group] + ":");
    for (const spec of flagTable.filter((s) => s.group === group)) {
      const head = flagSpellings(spec) + (spec.valueName ? " " + spec.valueName : "");
      out.push("  " + head);
      let help = spec.help;
      const d = defaultText(spec, mode);
      if (spec.required) help += " (required)";
      if (d !== undefined) help += ` (default ${d})`;
      // Server and background flags say so in their group title.
      if (!spec.modes.includes("probe") && spec.group !== "server" && spec.group !== "background") {
        help += " (not in probe mode)";
      }
      out.push(...wrap(help, 100, "        "));
    }
  }
  return out.join("\n") + "\n";
}

function modesText(spec: FlagSpec): string {
  if (spec.modes.length === ALL.length) return "all";
  if (spec.group === "server" && spec.modes.includes("runcli")) {
    return "server (accepted and unused with -runcli)";
  }
  return spec.modes.join(", ");
}

function escapeMarkdown(text: string): string {
  return text.replace(/\|/g, "\\|");
}

/**
 * The README's flag reference: one markdown table per group with every spelling, the default,
 * the modes the flag applies to and its description. Generated from {@link flagTable}, so the
 * README cannot drift from the program.
 */
export function flagReferenceMarkdown(): string {
  const out: string[] = [];
  for (const group of GROUPS) {
    out.push(`### ${GROUP_TITLES[group]}`, "");
    out.push("| Flag | Default | Modes | Description |", "| --- | --- | --- | --- |");
    for (const spec of flagTable.filter((s) => s.group === group)) {
      const flag = spec.names.map((n) => "`-" + n + "`").join(", ") +
        (spec.valueName ? " _" + escapeMarkdown(spec.valueName) + "_" : "");
      const d = spec.required ? "required" : defaultText(spec, undefined);
      const shown = d === undefined ? "" : escapeMarkdown(d);
      out.push(`| ${flag} | ${shown} | ${modesText(spec)} | ${escapeMarkdown(spec.help)} |`);
    }
    out.push("");
  }
  return out.join("\n");
}
