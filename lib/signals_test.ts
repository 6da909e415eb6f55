import { assertEquals } from "../tests/assert.ts";
import { abortOnTermination, awaitTermination } from "./signals.ts";

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

Deno.test("awaitTermination keeps a SIGTERM that arrives before anyone awaits it", async () => {
  const termination = awaitTermination();
  const guard = abortOnTermination(); // in case awaitTermination stopped listening too early
  try {
    const name = await withEventLoopAlive(async () => {
      const guarded = new Promise((resolve) => guard.signal.addEventListener("abort", resolve));
      Deno.kill(Deno.pid, "SIGTERM");
      await guarded; // the signal has been delivered; only now does anyone await `next`
      return termination.next;
    });
    assertEquals(name, "SIGTERM");
  } finally {
    termination.dispose();
    guard.dispose();
  }
});
