/**
 * Deno releases this program is known to break on, each with the Deno issue that tracks it, so
 * the guard can go once no supported Deno has the bug.
 *
 * @module
 */

/** The Deno version the project pins (README, `.ci/deno-version`, Dockerfile). */
export const pinnedDenoVersion = "2.9.3";

/** A range of Deno releases with a bug that breaks server mode. */
interface KnownBreakage {
  readonly first: string;
  readonly last: string;
  readonly what: string;
  readonly issue: string;
}

const breakages: readonly KnownBreakage[] = [{
  first: "2.9.4",
  last: "2.9.6",
  what: "aborts inside nghttp2 when the upstream sends GOAWAY (the proxy dies on the first " +
    "upstream restart)",
  issue: "https://github.com/denoland/deno/issues/36788",
}];

function parts(version: string): number[] {
  return version.split(/[.+-]/).slice(0, 3).map((p) => Number(p) || 0);
}

function compare(a: string, b: string): number {
  const [x, y] = [parts(a), parts(b)];
  for (let i = 0; i < 3; i++) if (x[i] !== y[i]) return x[i] - y[i];
  return 0;
}

/**
 * One warning line when `version` (Deno's, e.g. `Deno.version.deno`) is a release known to
 * break server mode, naming the problem and the pinned version; undefined otherwise.
 */
export function denoVersionWarning(version: string): string | undefined {
  const hit = breakages.find((b) =>
    compare(version, b.first) >= 0 && compare(version, b.last) <= 0
  );
  if (!hit) return undefined;
  return `Deno ${version} ${hit.what} (${hit.issue}); run this program with Deno ` +
    `${pinnedDenoVersion}, the pinned version`;
}
