/**
 * Command-line flags: one table (`flag_table.ts`) drives parsing, `-h` usage and the README flag
 * reference. The grammar is Go's `flag` package (`flag_scan.ts`); every rule on combinations of
 * flags is in `flag_validate.ts`, in grpc-health-probe's order; usage and the reference are
 * rendered by `usage.ts`. Everything here is a pure function of its arguments.
 *
 * @module
 */

import { parseGoDuration } from "./duration.ts";
import { type Config, type FlagSpec, flagTable, type Mode } from "./flag_table.ts";
import {
  chooseMode,
  isBoolLike,
  parseBool,
  scan,
  type ScanEvent,
  suggestion,
} from "./flag_scan.ts";
import { oneLine, quote, shorten } from "./flag_text.ts";
import { validate } from "./flag_validate.ts";

export {
  type Config,
  type FlagGroup,
  type FlagKey,
  type FlagKind,
  type FlagSpec,
  flagTable,
  type ListParse,
  type Mode,
  parseRpcHeader,
  validateServiceName,
} from "./flag_table.ts";
export { detectMode } from "./flag_scan.ts";
export { flagReferenceMarkdown, usage } from "./usage.ts";

/**
 * What {@link parseFlags} returns. On failure, `message` is one line that names the flag as the
 * * user spelled it and says how to fix it; `mode` picks the exit code (`invalidArgumentExit`).
 */
export type ParseResult =
  | { ok: true; config: Config }
  | { ok: false; mode: Mode; message: string };

/** What the flags set, keyed by {@link FlagKey}, and how each was spelled. */
interface Given {
  values: Map<string, unknown>;
  spelled: Map<string, string>;
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

/** The Config of what was given, every other field from its flag's default (for the mode). */
function buildConfig(mode: Mode, given: Given): Config {
  const config: Record<string, unknown> = { mode, servicesFixed: given.values.has("services") };
  for (const spec of flagTable) {
    if (spec.key === "runcli" || spec.key === "none") continue;
    const value = given.values.has(spec.key)
      ? given.values.get(spec.key)
      : spec.modeDefaults?.[mode] ?? spec.default;
    config[spec.key] = !Array.isArray(value)
      ? value
      : spec.unique
      ? [...new Set(value)]
      : [...value];
  }
  return config as Config;
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
