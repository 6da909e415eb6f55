/**
 * The assertions the tests use, on top of `node:assert` (JSR's `@std/assert` cannot be fetched
 * here).
 *
 * @module
 */

import nodeAssert from "node:assert/strict";

/** Fails unless `cond` is truthy. */
export function assert(cond: unknown, msg?: string): asserts cond {
  nodeAssert.ok(cond, msg as string);
}

/** Fails unless `actual` deep-equals `expected`. */
export function assertEquals<T>(actual: T, expected: T, msg?: string): void {
  nodeAssert.deepStrictEqual(actual, expected, msg as string);
}

/** Fails unless `text` matches `re`. */
export function assertMatch(text: string, re: RegExp, msg?: string): void {
  nodeAssert.match(text, re, msg as string);
}

/** Fails unless `text` contains `part`. */
export function assertStringIncludes(text: string, part: string, msg?: string): void {
  nodeAssert.ok(
    typeof text === "string" && text.includes(part),
    msg ?? `expected ${JSON.stringify(text)} to include ${JSON.stringify(part)}`,
  );
}

/**
 * Waits until `cond()` holds, polling every `stepMs`; fails with `what` after `limitMs`. The
 * limit is generous on purpose: it bounds a broken test, it does not measure speed.
 */
export async function assertEventually(
  cond: () => boolean | Promise<boolean>,
  what: string,
  limitMs = 20_000,
  stepMs = 10,
): Promise<void> {
  const started = performance.now();
  while (!(await cond())) {
    if (performance.now() - started > limitMs) {
      throw new Error(`timed out after ${limitMs} ms waiting for ${what}`);
    }
    await new Promise((resolve) => setTimeout(resolve, stepMs));
  }
}

/** Fails unless `fn` throws; returns what it threw. */
export function assertThrows(fn: () => unknown, msg?: string): unknown {
  try {
    fn();
  } catch (e) {
    return e;
  }
  throw new nodeAssert.AssertionError({ message: msg ?? "expected the function to throw" });
}
