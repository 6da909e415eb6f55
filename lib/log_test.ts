import { assert, assertEquals, assertMatch } from "../tests/assert.ts";
import { capturingLogger, createLogger, errorLine, fileWriter } from "./log.ts";

Deno.test("text lines: time, level, message, then fields as JSON values", () => {
  const lines: string[] = [];
  const log = createLogger({ write: (l) => lines.push(l) });
  log.warn("upstream state changed", { service: "a b", to: "NOT_SERVING", n: 2 });
  assertEquals(lines.length, 1);
  assertMatch(
    lines[0],
    /^\d{4}-\d\d-\d\dT[\d:.]+Z WARN upstream state changed service="a b" to="NOT_SERVING" n=2\n$/,
  );
});

Deno.test("JSON lines carry time, level, msg and the fields; debug only when enabled", () => {
  const lines: string[] = [];
  const quiet = createLogger({ json: true, write: (l) => lines.push(l) });
  quiet.debug("hidden");
  quiet.info("listening", { url: "http://127.0.0.1:8080" });
  assertEquals(lines.length, 1);
  const entry = JSON.parse(lines[0]);
  assertEquals([entry.level, entry.msg, entry.url], ["info", "listening", "http://127.0.0.1:8080"]);
  assert(!Number.isNaN(Date.parse(entry.time)), entry.time);
  const loud = createLogger({ debug: true, write: (l) => lines.push(l) });
  assert(loud.debugEnabled);
  loud.debug("checked", { service: "" });
  assertMatch(lines[1], / DEBUG checked service=""\n$/);
});

Deno.test("fileWriter appends lines to the file", async () => {
  const dir = await Deno.makeTempDir({ prefix: "ghp-log-" });
  try {
    const path = `${dir}/proxy.log`;
    await Deno.writeTextFile(path, "earlier\n");
    const log = createLogger({ write: fileWriter(path) });
    log.error("metrics listener not started");
    const text = await Deno.readTextFile(path);
    assertMatch(text, /^earlier\n.* ERROR metrics listener not started\n$/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("errorLine: the first line of the message, without Deno's os error suffix", () => {
  assertEquals(errorLine(new Error("Address in use (os error 98)")), "Address in use");
  assertEquals(errorLine(new Error("first\n    at stack")), "first");
  assertEquals(errorLine("plain"), "plain");
  assertEquals(errorLine(new Error("")), "unknown error");
});

Deno.test("capturingLogger keeps level, message and fields", () => {
  const { logger, lines } = capturingLogger();
  logger.info("a", { x: 1 });
  logger.debug("not kept: debug is off");
  assertEquals(lines.filter((l) => l.level !== "debug"), [{
    level: "info",
    msg: "a",
    fields: { x: 1 },
  }]);
});
