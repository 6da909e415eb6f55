/**
 * Logging: one line per event, text (default) or JSON (`-jsonLog`), to stderr or to the file
 * named by `-logTarget`. Debug lines appear only with `-debug` or `-v` > 0.
 *
 * @module
 */

/** Fields attached to a log line; values are printed as JSON. */
export type LogFields = Record<string, unknown>;

/** Log levels, least to most severe. */
export type LogLevel = "debug" | "info" | "warn" | "error";

/** Where log lines go and how they look. */
export interface Logger {
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
  /** Whether debug lines are written (callers skip building costly fields otherwise). */
  readonly debugEnabled: boolean;
}

/** Options for {@link createLogger}. */
export interface LoggerOptions {
  json?: boolean;
  debug?: boolean;
  /** Writes one finished line (with its newline). Defaults to stderr. */
  write?: (line: string) => void;
}

const encoder = new TextEncoder();

/** Writes a line to stderr synchronously, so lines are never lost on exit. */
export function writeStderr(line: string): void {
  Deno.stderr.writeSync(encoder.encode(line));
}

/** Opens `path` for appending and returns a line writer for it. */
export function fileWriter(path: string): (line: string) => void {
  const file = Deno.openSync(path, { append: true, create: true });
  return (line) => {
    file.writeSync(encoder.encode(line));
  };
}

/** Creates a logger. */
export function createLogger(options: LoggerOptions = {}): Logger {
  const write = options.write ?? writeStderr;
  const debugEnabled = options.debug ?? false;
  const emit = (level: LogLevel, msg: string, fields?: LogFields) => {
    const time = new Date().toISOString();
    if (options.json) {
      write(JSON.stringify({ time, level, msg, ...fields }) + "\n");
      return;
    }
    let line = `${time} ${level.toUpperCase()} ${msg}`;
    if (fields) {
      for (const [k, v] of Object.entries(fields)) line += ` ${k}=${JSON.stringify(v)}`;
    }
    write(line + "\n");
  };
  return {
    debugEnabled,
    debug: (msg, fields) => {
      if (debugEnabled) emit("debug", msg, fields);
    },
    info: (msg, fields) => emit("info", msg, fields),
    warn: (msg, fields) => emit("warn", msg, fields),
    error: (msg, fields) => emit("error", msg, fields),
  };
}

/** A logger that drops everything (for tests and library use). */
export const silentLogger: Logger = {
  debugEnabled: false,
  debug() {},
  info() {},
  warn() {},
  error() {},
};

/** A logger that keeps its lines in memory (for tests, and callers that inspect what was logged). */
export function capturingLogger(): {
  logger: Logger;
  lines: { level: LogLevel; msg: string; fields?: LogFields }[];
} {
  const lines: { level: LogLevel; msg: string; fields?: LogFields }[] = [];
  return {
    lines,
    logger: loggerOf((level) => (msg, fields) => lines.push({ level, msg, fields })),
  };
}

/** A logger (debug off) whose every level goes to `at(level)`: for tests that watch the log. */
export function loggerOf(
  at: (level: LogLevel) => (msg: string, fields?: LogFields) => void,
): Logger {
  return {
    debugEnabled: false,
    debug: at("debug"),
    info: at("info"),
    warn: at("warn"),
    error: at("error"),
  };
}

/**
 * The first line of an error's message, without Deno's `(os error N)` suffix: what a log field
 * or a one-line CLI error says about `e`. Never empty.
 */
export function errorLine(e: unknown): string {
  const msg = e instanceof Error ? e.message : String(e);
  return msg.split("\n")[0].replace(/\s*\(os error \d+\)$/, "").trim() || "unknown error";
}
