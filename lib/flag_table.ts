/**
 * The flag table: every flag of the program written once, with its spellings, kind, default,
 * help, group and modes. {@link Config} is derived from it, and the scanner, validation, `-h`
 * and the README flag reference all read it. The flags are the union of grpc-health-probe's and
 * grpc_health_proxy v1.2.1's (both spellings everywhere), plus this program's own.
 *
 * @module
 */

import { quote } from "./flag_text.ts";

/** The three ways the program runs (the README's mode table). */
export type Mode = "server" | "probe" | "runcli";

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

/** A parsed list value, or why the value is wrong. */
export type ListParse = { items: readonly unknown[] } | { error: string };

/** One row of {@link flagTable}. */
export interface FlagSpec {
  /**
   * Every spelling, without dashes. For aliases (the README's flag reference) the first is
   * grpc-health-probe's and the second grpc_health_proxy's; messages pick the same family.
   */
  readonly names: readonly string[];
  readonly kind: FlagKind;
  /** Where the value goes: a {@link Config} field, or `runcli`/`none` for flags that fill none. */
  readonly key: string;
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
  /** `list` only: repeated items are kept once, in first-seen order. */
  readonly unique?: boolean;
}

/** Every mode. */
export const ALL: readonly Mode[] = ["server", "probe", "runcli"];
/** grpc_health_proxy v1.2.1's listener flags: v1.2.1 accepted (and ignored) them with -runcli. */
const SERVER_V1: readonly Mode[] = ["server", "runcli"];
/** This program's own one-shot flags: an error in server mode. */
const ONE_SHOT: readonly Mode[] = ["probe", "runcli"];
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
function parseServiceList(raw: string): { items: string[] } | { error: string } {
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

/** The table as written, with its literal types ({@link Config} is derived from them). */
const rows = [
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
      "are SERVING. In server mode, setting it fixes the services (?serviceName= must name one); " +
      "otherwise ?serviceName= picks it.",
    group: "upstream",
    modes: ALL,
    parseList: parseServiceList,
    unique: true,
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
    names: ["http-list-path"],
    kind: "string",
    key: "httpListPath",
    default: "",
    defaultText: "off",
    valueName: "path",
    help: "URL path listing every service Health/List names: 200 only when all are SERVING, " +
      "501 when the upstream has no List (docs/list.md)",
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
  {
    names: ["status-http-path"],
    kind: "string",
    key: "statusHttpPath",
    default: "/status",
    valueName: "path",
    help: "URL path of the operator page (HTML; JSON at the path plus .json) on the metrics " +
      'listener; "" disables',
    group: "server",
    modes: SERVER,
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
    names: ["list"],
    kind: "bool",
    key: "list",
    default: false,
    help: "print every service Health/List names and its status: exit 0 only when all are " +
      "SERVING (not in grpc-health-probe; docs/list.md)",
    group: "other",
    modes: ONE_SHOT,
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
] as const satisfies readonly FlagSpec[];

/**
 * The flags. Order within a group is display order. Validation rules that involve several
 * flags are in `flag_validate.ts`.
 */
export const flagTable: readonly FlagSpec[] = rows;

/** One row of the table as it is written (its literal types). */
type TableRow = typeof rows[number];

/** The value a row's flag puts in {@link Config}, from its kind (and, for lists, its parser). */
type ValueOf<S extends TableRow> = S extends { kind: "bool" } ? boolean
  : S extends { kind: "string" } ? string
  : S extends { kind: "duration" | "int" | "verbosity" } ? number
  : S extends { parseList: (raw: string) => infer R } ? ItemOf<R>[]
  : never;

/** The item type of a list parser's result. */
type ItemOf<R> = R extends { items: readonly (infer I)[] } ? I : never;

/** Keys of rows that fill no {@link Config} field (-runcli picks the mode; glog's are dropped). */
type NoField = "runcli" | "none";

/** Where each flag's value goes: every key of the table. */
export type FlagKey = TableRow["key"];

/**
 * Everything the flags say, with defaults applied: one field per row of {@link flagTable}
 * (its help says what it holds; durations in milliseconds), plus the mode and whether the
 * operator fixed the services.
 */
export type Config =
  & { -readonly [S in TableRow as S["key"] extends NoField ? never : S["key"]]: ValueOf<S> }
  & {
    mode: Mode;
    /**
     * Whether `-service`/`-service-name` was given at all: server mode then answers only for
     * those services, and `?serviceName=` naming another is refused.
     */
    servicesFixed: boolean;
  };
