/**
 * TLS material, in one place for the upstream client, the HTTPS and mTLS listeners and the
 * certificate watcher: read a PEM file named by a flag, check a certificate, key and CA, and say
 * in one line what is wrong.
 *
 * @module
 */

import type * as NodeCrypto from "node:crypto";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { errorLine } from "./log.ts";

/** A PEM certificate (chain) and its PEM private key. */
export interface PemPair {
  cert: string;
  key: string;
}

/** A PEM file named by a flag cannot be used; the message names the flag and the path. */
export class TlsFileError extends Error {}

/**
 * Reads the PEM file `path` given with `flag`. Throws a {@link TlsFileError} with one line
 * (`cannot read -tls-ca-cert file "x.pem": ENOENT`, or `... holds no PEM data`).
 */
export function readPemFile(flag: string, path: string): string {
  let text: string;
  try {
    text = readFileSync(path, "latin1");
  } catch (err) {
    // Node-style codes (ENOENT, EACCES) are the clearest; Deno's permission errors name the
    // flag to add (--allow-read) in their message.
    const code = err instanceof Error && "code" in err ? String(err.code) : errorLine(err);
    throw new TlsFileError(`cannot read ${flag} file "${path}": ${code}`);
  }
  if (!text.includes("-----BEGIN ")) {
    throw new TlsFileError(`${flag} file "${path}" holds no PEM data`);
  }
  return text;
}

/** Certificate, key and CA PEM to check; each part is optional. */
export interface TlsMaterial {
  cert?: string;
  key?: string;
  ca?: string;
}

/** What to call each part in messages (a flag, or a plain name). */
export interface TlsPartNames {
  cert: string;
  key: string;
  ca: string;
}

const plainNames: TlsPartNames = { cert: "certificate", key: "private key", ca: "CA certificate" };

/**
 * What is wrong with `m`, in one line, or undefined when every part given is usable: the
 * certificate and CA parse as X.509, the key as a private key, and (when both are given) the
 * key belongs to the certificate. Checked up front so that a bad file fails at start with a
 * clear message, not at the first handshake with a misleading one.
 */
export function tlsMaterialProblem(
  m: TlsMaterial,
  names: TlsPartNames = plainNames,
): string | undefined {
  if (m.cert === undefined && m.key === undefined && m.ca === undefined) return undefined;
  // Loaded on first use: node:crypto adds milliseconds to a probe's start-up otherwise.
  const crypto = createRequire(import.meta.url)("node:crypto") as typeof NodeCrypto;
  if (m.ca !== undefined) {
    try {
      new crypto.X509Certificate(m.ca);
    } catch (e) {
      return `bad ${names.ca}: ${errorLine(e)}`;
    }
  }
  let cert: NodeCrypto.X509Certificate | undefined;
  if (m.cert !== undefined) {
    try {
      cert = new crypto.X509Certificate(m.cert);
    } catch (e) {
      return `bad ${names.cert}: ${errorLine(e)}`;
    }
  }
  let key: NodeCrypto.KeyObject | undefined;
  if (m.key !== undefined) {
    try {
      key = crypto.createPrivateKey(m.key);
    } catch (e) {
      return `bad ${names.key}: ${errorLine(e)}`;
    }
  }
  if (cert && key && !cert.checkPrivateKey(key)) {
    return `the ${names.key} does not match the ${names.cert}`;
  }
  return undefined;
}
