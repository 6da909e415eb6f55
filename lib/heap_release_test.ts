import { assertEquals, assertEventually } from "../tests/assert.ts";
import { releaseHeapAfterBursts } from "./heap_release.ts";

const MB = 2 ** 20;

Deno.test("a heap grown past the threshold is collected; one near its start size is not", async () => {
  let heap = 20 * MB;
  let looks = 0;
  let collections = 0;
  const stop = releaseHeapAfterBursts({
    intervalMs: 5,
    growthBytes: 16 * MB,
    heapBytes: () => (looks++, heap),
    collect: () => {
      collections++;
      heap = 22 * MB; // what a full collection leaves
    },
  });
  try {
    const ticks = async (n: number) => {
      const until = looks + n;
      await assertEventually(() => looks >= until, `${n} looks at the heap`);
    };
    await ticks(3);
    assertEquals(collections, 0); // 20 MB: the size at start
    heap = 35 * MB; // a burst: +15 MB, under the threshold
    await ticks(3);
    assertEquals(collections, 0);
    heap = 60 * MB;
    await assertEventually(() => collections === 1, "a collection after the burst");
    await ticks(3);
    assertEquals(collections, 1); // back near the start size: nothing more to do
  } finally {
    stop();
  }
});

Deno.test("the default collection is V8's full GC, enabled at run time", async () => {
  let looks = 0;
  const stop = releaseHeapAfterBursts({
    intervalMs: 5,
    growthBytes: 0, // collect at every look
    heapBytes: () => (looks++, Deno.memoryUsage().heapTotal),
  });
  try {
    // A failing gc() would throw from the timer and fail this test.
    await assertEventually(() => looks >= 4, "a few collections");
  } finally {
    stop();
  }
});

Deno.test("no collection while the load goes on; one once it is over", async () => {
  let busy = true;
  let requests = 0;
  let looks = 0;
  let collections = 0;
  let heap = 20 * MB;
  const stop = releaseHeapAfterBursts({
    intervalMs: 5,
    growthBytes: 16 * MB,
    heapBytes: () => heap,
    // Read once a look; while busy, 1,000 requests between any two looks.
    activity: () => (looks++, busy ? (requests += 1_000) : requests),
    quietActivity: 100,
    collect: () => {
      collections++;
      heap = 20 * MB;
    },
  });
  heap = 60 * MB; // the burst
  try {
    const until = looks + 6;
    await assertEventually(() => looks >= until, "six looks while busy");
    assertEquals(collections, 0);
    busy = false;
    await assertEventually(() => collections === 1, "a collection once quiet");
  } finally {
    stop();
  }
});
