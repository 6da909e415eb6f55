/**
 * The one place the program listens for termination signals (SIGINT, SIGTERM), for both the
 * one-shot modes (cancel the check) and server mode (drain and stop).
 *
 * @module
 */

/** The signals that end the program. */
export const terminationSignals = ["SIGINT", "SIGTERM"] as const;

/** One of {@link terminationSignals}. */
export type TerminationSignal = typeof terminationSignals[number];

/**
 * Aborts the returned signal on the first SIGINT or SIGTERM (its `reason` is the signal's name)
 * until disposed; `onSignal` runs first. Dispose once done so the process can exit.
 */
export function abortOnTermination(
  onSignal: (name: TerminationSignal) => void = () => {},
): { signal: AbortSignal; dispose: () => void } {
  const controller = new AbortController();
  const handlers = terminationSignals.map((name) =>
    [name, () => {
      if (controller.signal.aborted) return;
      onSignal(name);
      controller.abort(name);
    }] as const
  );
  for (const [name, handler] of handlers) Deno.addSignalListener(name, handler);
  return {
    signal: controller.signal,
    dispose: () => {
      for (const [name, handler] of handlers) Deno.removeSignalListener(name, handler);
    },
  };
}

/**
 * Starts listening for SIGINT and SIGTERM now: `next` resolves with the first one's name, even
 * if it arrives before anyone awaits it (a server still starting). Dispose to stop listening.
 */
export function awaitTermination(): { next: Promise<TerminationSignal>; dispose: () => void } {
  let resolve!: (name: TerminationSignal) => void;
  const next = new Promise<TerminationSignal>((r) => resolve = r);
  const { dispose } = abortOnTermination((name) => {
    dispose();
    resolve(name);
  });
  return { next, dispose };
}

/**
 * Logs and ignores SIGHUP until disposed: a closed terminal or a supervisor's reload signal must
 * not silently kill a health proxy (the default action exits 129 with no line). SIGPIPE is
 * already ignored by Deno.
 */
export function ignoreHangup(onHangup: () => void): () => void {
  if (Deno.build.os === "windows") return () => {};
  Deno.addSignalListener("SIGHUP", onHangup);
  return () => Deno.removeSignalListener("SIGHUP", onHangup);
}
