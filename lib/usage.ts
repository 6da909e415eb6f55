/**
 * The flag table as text: `-h` usage per mode and the README's flag reference (Markdown, kept
 * true by `deno task readme`).
 *
 * @module
 */

import { formatGoDuration } from "./duration.ts";
import { ALL, type FlagGroup, type FlagSpec, flagTable, type Mode } from "./flag_table.ts";

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
      } else if (!spec.modes.includes("server") && spec.group === "other") {
        help += " (not in server mode)";
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

/** The help text up to its first clause break, for the summary. */
function firstClause(help: string): string {
  const end = help.search(/[.;:(]\s|\s\(/);
  return end < 0 ? help : help.slice(0, end);
}

/**
 * The README's flag summary: per group, every flag with its spellings and the first clause of
 * its help, one line each. The full reference is {@link flagReferenceMarkdown} (`docs/flags.md`).
 */
export function flagSummaryMarkdown(): string {
  const out: string[] = [];
  for (const group of GROUPS) {
    const flags = flagTable.filter((s) => s.group === group && s.kind !== "ignored").map((spec) =>
      spec.names.map((n) => "`-" + n + "`").join("/") + ": " + firstClause(spec.help)
    );
    out.push(`- **${GROUP_TITLES[group]}**: ${flags.join("; ")}.`);
  }
  return out.join("\n") + "\n";
}
