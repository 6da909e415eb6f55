/**
 * Client certificates of the mTLS listener: which are accepted, why one is refused, and a
 * rate-limited warning per refusal.
 *
 * The TLS stack (Deno's `node:tls`, rustls/webpki) is asked for the certificate without refusing
 * it (`rejectUnauthorized: false`), so that the reason of a refusal can be logged: a certificate
 * it verified (`authorized`) is accepted as is; any other is checked here with `@peculiar/x509`
 * and the connection closed when it fails. The TLS stack still checks that the client holds the
 * certificate's key (the handshake signature) for X.509 v3 certificates, verified or not.
 *
 * @module
 */

import type { TLSSocket } from "node:tls";
import type { Logger } from "./log.ts";
import { LineLimiter } from "./log_limit.ts";
import { loadX509 } from "./certificates.ts";

/** Why a client certificate was refused (the `reason` field of the log line). */
export type Refusal =
  | "no certificate"
  | "expired"
  | "not yet valid"
  | "other CA"
  | "self-signed"
  | "wrong usage"
  | "X.509 v1"
  | "bad certificate";

/** Options for {@link clientCertChecker}. */
export interface CheckerOptions {
  /**
   * Accept X.509 v1 client certificates that chain to the CA (default false). Deno 2.9.3's
   * `node:tls` does not verify the handshake signature of a v1 certificate (webpki cannot parse
   * v1, and `NodeClientCertVerifier::verify_tls13_signature` in denoland/deno
   * `ext/node/ops/tls_wrap.rs` then reports success), so a client that only has a copy of the
   * certificate, not its key, would be let in. Leave off until the TLS stack checks it.
   */
  allowV1?: boolean;
}

/**
 * A checker for client certificate chains (DER, leaf first, then any intermediates the client
 * sent) against the CA certificates in `caPem`. Resolves with the refusal, or undefined when the
 * chain is accepted: it leads to one of the CAs, with valid signatures, every certificate within
 * its validity period at `now`, intermediates being CAs, and the leaf, where it says, meant for
 * client authentication (key usage `digitalSignature`, extended key usage `clientAuth`).
 */
export async function clientCertChecker(
  caPem: string,
  opts: CheckerOptions = {},
): Promise<(chain: Uint8Array<ArrayBuffer>[], now: Date) => Promise<Refusal | undefined>> {
  const x509 = await loadX509();
  type Cert = InstanceType<typeof x509.X509Certificate>;
  const cas = x509.PemConverter.decode(caPem).map((der) => new x509.X509Certificate(der));
  const signedBy = (cert: Cert, issuer: Cert) =>
    cert.issuer === issuer.subject
      ? cert.verify({ publicKey: issuer.publicKey, signatureOnly: true }).catch(() => false)
      : Promise.resolve(false);
  const timely = (cert: Cert, now: Date): Refusal | undefined =>
    now < cert.notBefore ? "not yet valid" : now > cert.notAfter ? "expired" : undefined;
  const isCa = (cert: Cert) => cert.getExtension(x509.BasicConstraintsExtension)?.ca === true;
  const known = new Set([
    "2.5.29.15", // key usage
    "2.5.29.37", // extended key usage
    "2.5.29.19", // basic constraints
    "2.5.29.17", // subject alternative name
  ]);

  return async (chain, now) => {
    if (chain.length === 0) return "no certificate";
    let certs: Cert[];
    try {
      certs = chain.map((der) => new x509.X509Certificate(der));
    } catch {
      return "bad certificate";
    }
    const [leaf, ...sent] = certs;
    // Up the chain: through valid intermediates the client sent, to one of the CAs.
    let at = leaf;
    let anchored = false;
    for (let depth = 0; depth < 6 && !anchored; depth++) {
      if (await someAsync(cas, (ca) => signedBy(at, ca))) anchored = true;
      else {
        const next = await findAsync(
          sent,
          async (c) => c !== at && isCa(c) && !timely(c, now) && await signedBy(at, c),
        );
        if (!next) break;
        at = next;
      }
    }
    if (!anchored) {
      return leaf.subject === leaf.issuer && await signedBy(leaf, leaf)
        ? "self-signed"
        : "other CA";
    }
    if (x509Version(chain[0]) === 1 && !opts.allowV1) return "X.509 v1";
    const late = timely(leaf, now);
    if (late) return late;
    if (leaf.extensions.some((e) => e.critical && !known.has(e.type))) return "bad certificate";
    if (isCa(leaf)) return "wrong usage";
    const ku = leaf.getExtension(x509.KeyUsagesExtension);
    if (ku && !(ku.usages & x509.KeyUsageFlags.digitalSignature)) return "wrong usage";
    const eku = leaf.getExtension(x509.ExtendedKeyUsageExtension)?.usages.map(String);
    if (eku && !eku.includes(CLIENT_AUTH) && !eku.includes(ANY_EKU)) return "wrong usage";
    return undefined;
  };
}

const CLIENT_AUTH = "1.3.6.1.5.5.7.3.2";
const ANY_EKU = "2.5.29.37.0";

async function someAsync<T>(items: T[], test: (t: T) => Promise<boolean>): Promise<boolean> {
  for (const item of items) if (await test(item)) return true;
  return false;
}

async function findAsync<T>(items: T[], test: (t: T) => Promise<boolean>): Promise<T | undefined> {
  for (const item of items) if (await test(item)) return item;
  return undefined;
}

/**
 * The X.509 version (1, 2 or 3) of a DER certificate: the optional `[0]` tag at the start of
 * the TBSCertificate; absent means v1 (RFC 5280 section 4.1).
 */
export function x509Version(der: Uint8Array): number {
  // Skip a tag and its length; returns the offset of the contents.
  const contents = (at: number) => {
    const len = der[at + 1];
    return at + 2 + (len & 0x80 ? len & 0x7f : 0);
  };
  const tbs = contents(0);
  const first = contents(tbs);
  if (der[first] !== 0xa0) return 1;
  const version = contents(first); // INTEGER inside [0]
  return der[contents(version)] + 1;
}

/** Options for {@link refusalLog}. */
export interface RefusalLogOptions {
  /** At most this many refusal lines per interval (default 10). */
  maxLines?: number;
  /** The interval, ms (default 60 000). */
  intervalMs?: number;
  /** The clock (default `Date.now`). */
  now?: () => number;
  /** Runs `fn` after `ms` (default an unref'd `setTimeout`); returns a canceller. */
  later?: (fn: () => void, ms: number) => () => void;
}

/**
 * A warning per refused client certificate (`client certificate refused`, with the reason and
 * the peer), at most `maxLines` per interval so a flood cannot flood the log; at the end of an
 * interval in which some were dropped, one line says how many. `close()` writes that line early
 * and stops the timer.
 */
export function refusalLog(
  logger: Logger,
  opts: RefusalLogOptions = {},
): { refused(reason: Refusal, peer: string): void; close(): void } {
  const intervalMs = opts.intervalMs ?? 60_000;
  const limiter = new LineLimiter({
    perWindow: opts.maxLines ?? 10,
    windowMs: intervalMs,
    onSuppressed: (_, count) =>
      logger.warn("client certificate refusals not logged (rate limit)", { count, intervalMs }),
    now: opts.now,
    setTimer: opts.later,
  });
  return {
    refused(reason, peer) {
      if (limiter.allow("")) logger.warn("client certificate refused", { reason, peer });
    },
    close: () => limiter.close(),
  };
}

/** What {@link clientAdmission} needs of a server-side TLS socket once its handshake is done. */
export type PeerSocket = Pick<
  TLSSocket,
  "authorized" | "isSessionReused" | "getPeerCertificate" | "remoteAddress" | "remotePort"
>;

/**
 * Admission to the mTLS listener, asked once a handshake is done: `admit` resolves true for a
 * client with an acceptable certificate from `caPem` ({@link clientCertChecker}); a refusal is
 * logged ({@link refusalLog}) and resolves false, and the caller closes the connection.
 * `close()` writes pending log summaries.
 */
export async function clientAdmission(
  caPem: string,
  logger: Logger,
): Promise<{ admit(sock: PeerSocket): Promise<boolean>; close(): void }> {
  const check = await clientCertChecker(caPem);
  const refusals = refusalLog(logger);
  return {
    async admit(sock) {
      // Verified by the TLS stack in this handshake: nothing more to check. A resumed session
      // is always checked here: Deno 2.9.3 reports it `authorized` even when the handshake that
      // issued its ticket was refused (its client then retries and would be let in).
      if (sock.authorized && !sock.isSessionReused()) return true;
      try {
        const refusal = await check(peerChain(sock), new Date());
        if (refusal === undefined) return true;
        refusals.refused(refusal, peerName(sock));
      } catch (e) {
        logger.error("client certificate check failed", {
          error: e instanceof Error ? e.message : String(e),
          peer: peerName(sock),
        });
      }
      return false;
    },
    close: () => refusals.close(),
  };
}

/** The client's certificate chain as DER, leaf first; empty when it sent none. */
function peerChain(sock: PeerSocket): Uint8Array<ArrayBuffer>[] {
  const chain: Uint8Array<ArrayBuffer>[] = [];
  let c = sock.getPeerCertificate(true) as { raw?: Uint8Array; issuerCertificate?: unknown };
  while (c?.raw && chain.length < 8) {
    if (chain.some((d) => equalBytes(d, c.raw!))) break; // a self-signed one is its own issuer
    chain.push(new Uint8Array(c.raw));
    c = c.issuerCertificate as typeof c;
  }
  return chain;
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

/** `address:port` of the client (IPv6 in brackets). */
function peerName(sock: PeerSocket): string {
  const addr = sock.remoteAddress ?? "unknown";
  return `${addr.includes(":") ? `[${addr}]` : addr}:${sock.remotePort ?? 0}`;
}
