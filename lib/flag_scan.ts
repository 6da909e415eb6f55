/**
 * Go's `flag` grammar over the flag table: scanning arguments into events (shared by parsing and
 * mode detection), Go's boolean syntax, suggestions for typos, and choosing the mode.
 *
 * @module
 */

import { type FlagSpec, flagTable, type Mode } from "./flag_table.ts";

/** Every spelling of every flag. */
const specByName: ReadonlyMap<string, FlagSpec> = new Map(
  flagTable.flatMap((spec) => spec.names.map((n) => [n, spec] as const)),
);
/** The flag that fills each key. */
export const specByKey: ReadonlyMap<string, FlagSpec> = new Map(
  flagTable.filter((s) => s.key !== "none").map((s) => [s.key, s] as const),
);

/** Go's strconv.ParseBool. */
export function parseBool(s: string): boolean | undefined {
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

export function isBoolLike(spec: FlagSpec): boolean {
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
export function suggestion(name: string): string {
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

export type ScanEvent =
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
export function* scan(args: readonly string[]): Generator<ScanEvent> {
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

/** The basename of `invokedAs` without one extension (`.js`, `.exe`, `.ts`), lower-cased. */
function programName(invokedAs: string): string {
  const base = invokedAs.split(/[\\/]/).pop() ?? "";
  return base.replace(/\.[^.]*$/, "").toLowerCase();
}

export interface ModeChoice {
  mode: Mode;
  /** Why, for messages about flags that do not apply. */
  reason: string;
}

export function chooseMode(args: readonly string[], invokedAs: string | undefined): ModeChoice {
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
