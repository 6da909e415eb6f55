/**
 * The program's version line, from `deno.json` (embedded at build time by the JSON import, so
 * nothing is read at run time).
 *
 * @module
 */

import denoJson from "../deno.json" with { type: "json" };

/** This program's version, from `deno.json`. */
export const version: string = denoJson.version;

/** The pinned grpc-js version, from the import map (so it cannot drift from what is used). */
export const grpcJsVersion: string = denoJson.imports["@grpc/grpc-js"].replace(/^npm:.*@/, "");

/** The line `-version` prints. */
export function versionLine(): string {
  return `grpc_health_proxy ${version} (deno ${Deno.version.deno}, grpc-js ${grpcJsVersion})`;
}
