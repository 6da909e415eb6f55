import { assertEquals } from "../tests/assert.ts";
import { abortOnTermination, nextTermination } from "./signals.ts";

// Real SIGTERMs sent to this test process (deno test keeps SIGINT for itself). A listener is
// installed before each kill, so the default action (exit) never runs; signal listeners do not
// keep the event loop alive, so an interval does while the test waits.
async function withEventLoopAlive<T>(body: () => Promise<T>): Promise<T> {
  const alive = setInterval(() => {}, 1000);
  try {
    return await body();
  } finally {
    clearInterval(alive);
  }
}

Deno.test("abortOnTermination: the first SIGTERM aborts with its name, once", async () => {
  const seen: string[] = [];
  const { signal, dispose } = abortOnTermination((name) => seen.push(name));
  try {
    await withEventLoopAlive(async () => {
      const aborted = new Promise((resolve) => signal.addEventListener("abort", resolve));
      Deno.kill(Deno.pid, "SIGTERM");
      await aborted;
    });
    assertEquals(signal.reason, "SIGTERM");
    assertEquals(seen, ["SIGTERM"]);
  } finally {
    dispose();
  }
});

Deno.test("nextTermination resolves with the signal's name", async () => {
  const next = nextTermination();
  const guard = abortOnTermination(); // in case nextTermination stopped listening too early
  try {
    const name = await withEventLoopAlive(() => {
      Deno.kill(Deno.pid, "SIGTERM");
      return next;
    });
    assertEquals(name, "SIGTERM");
  } finally {
    guard.dispose();
  }
});
