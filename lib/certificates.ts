/**
 * Server certificates: an in-memory self-signed certificate for `-https-self-signed`, and a
 * watcher that notices when `-https-listen-cert` / `-https-listen-key` change on disk.
 *
 * @module
 */

import { createHash, X509Certificate } from "node:crypto";
import { errorLine, type Logger } from "./log.ts";
import { type PemPair, tlsMaterialProblem } from "./tls_material.ts";

export type { PemPair };

/** Options for {@link selfSignedCertificate}. */
export interface SelfSignedOptions {
  /**
   * Extra names for the subject alternative names, besides `localhost`, `127.0.0.1` and `::1`.
   * DNS names (`*.example.com` allowed) or IP addresses (`10.0.0.1`, `fd00::1`, `[fd00::1]`).
   */
  hostnames?: string[];
  /** Days of validity from now (default 365); the certificate is also valid since yesterday. */
  days?: number;
}

const DAY_MS = 86_400_000;
const ECDSA_P256 = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" } as const;

/**
 * Makes a self-signed server certificate in memory: ECDSA P-256 with SHA-256, serverAuth, SANs
 * `DNS:localhost`, `IP:127.0.0.1`, `IP:::1` plus `hostnames`, valid from a day ago (clock skew)
 * to `days` ahead. For probers that do not verify certificates (GKE and ALB health checks);
 * nothing is written to disk. Takes a few milliseconds (plus ~150 ms to load the X.509 library
 * on first use). Throws a `RangeError` on a bad `days` or hostname.
 */
export async function selfSignedCertificate(opts: SelfSignedOptions = {}): Promise<PemPair> {
  const days = opts.days ?? 365;
  if (!Number.isFinite(days) || days <= 0 || days > 36500) {
    throw new RangeError(`invalid certificate validity: ${days} days`);
  }
  const x509 = await loadX509();
  const names: { type: "dns" | "ip"; value: string }[] = [];
  const seen = new Set<string>();
  for (const raw of ["localhost", "127.0.0.1", "::1", ...(opts.hostnames ?? [])]) {
    const name = sanName(raw);
    const id = `${name.type}:${name.value}`;
    if (!seen.has(id)) {
      seen.add(id);
      names.push(name);
    }
  }
  const keys = await crypto.subtle.generateKey(ECDSA_P256, true, ["sign", "verify"]);
  const serial = crypto.getRandomValues(new Uint8Array(16));
  serial[0] = (serial[0] & 0x7f) | 0x01; // positive and 16 bytes long, as RFC 5280 wants
  const now = Date.now();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: hex(serial),
    name: "CN=grpc_health_proxy self-signed",
    notBefore: new Date(now - DAY_MS),
    notAfter: new Date(now + days * DAY_MS),
    signingAlgorithm: ECDSA_P256,
    keys,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
      new x509.SubjectAlternativeNameExtension(names),
    ],
  });
  const pkcs8 = await crypto.subtle.exportKey("pkcs8", keys.privateKey);
  return {
    cert: cert.toString("pem") + "\n",
    key: x509.PemConverter.encode(pkcs8, "PRIVATE KEY") + "\n",
  };
}

/** A hostname or IP literal as a subject alternative name; RangeError when it is neither. */
function sanName(raw: string): { type: "dns" | "ip"; value: string } {
  const bad = () => new RangeError(`invalid certificate hostname "${raw}"`);
  const name = raw.trim().toLowerCase();
  const unbracketed = name.startsWith("[") && name.endsWith("]") ? name.slice(1, -1) : name;
  if (unbracketed.includes(":")) {
    // Let the URL parser validate (and canonicalise) IPv6 literals.
    try {
      return { type: "ip", value: new URL(`http://[${unbracketed}]/`).hostname.slice(1, -1) };
    } catch {
      throw bad();
    }
  }
  if (/^[0-9.]+$/.test(name)) {
    const parts = name.split(".");
    if (parts.length !== 4 || parts.some((p) => !/^[0-9]{1,3}$/.test(p) || Number(p) > 255)) {
      throw bad();
    }
    return { type: "ip", value: parts.map(Number).join(".") };
  }
  const label = /^(\*|[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?)$/;
  const labels = name.replace(/\.$/, "").split(".");
  if (name.length > 253 || labels.some((l, i) => !label.test(l) || (l === "*" && i > 0))) {
    throw bad();
  }
  return { type: "dns", value: labels.join(".") };
}

function hex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

let x509Module: Promise<typeof import("@peculiar/x509")> | undefined;

/**
 * Loads `@peculiar/x509` on first use only (it takes ~150 ms, which probe mode must not pay).
 * Its dependency tsyringe refuses to load without a `Reflect.getMetadata` polyfill (normally the
 * `reflect-metadata` package); the few functions it calls are provided here instead.
 */
export function loadX509(): Promise<typeof import("@peculiar/x509")> {
  if (!x509Module) {
    installReflectMetadata();
    x509Module = import("@peculiar/x509");
  }
  return x509Module;
}

/** A minimal `reflect-metadata`: the metadata functions tsyringe uses, if none are installed. */
function installReflectMetadata(): void {
  const reflect = Reflect as unknown as Record<string, unknown>;
  if (typeof reflect.getMetadata === "function") return;
  const store = new WeakMap<object, Map<unknown, unknown>>();
  const own = (target: object, create: boolean) => {
    let map = store.get(target);
    if (!map && create) store.set(target, map = new Map());
    return map;
  };
  const find = (key: unknown, target: object) => {
    for (let o: object | null = target; o !== null; o = Object.getPrototypeOf(o)) {
      const map = store.get(o);
      if (map?.has(key)) return map;
    }
    return undefined;
  };
  const functions: Record<string, unknown> = {
    defineMetadata: (key: unknown, value: unknown, target: object) => {
      own(target, true)!.set(key, value);
    },
    getOwnMetadata: (key: unknown, target: object) => own(target, false)?.get(key),
    hasOwnMetadata: (key: unknown, target: object) => own(target, false)?.has(key) ?? false,
    getMetadata: (key: unknown, target: object) => find(key, target)?.get(key),
    hasMetadata: (key: unknown, target: object) => find(key, target) !== undefined,
    metadata: (key: unknown, value: unknown) => (target: object) => {
      own(target, true)!.set(key, value);
    },
  };
  for (const [name, value] of Object.entries(functions)) {
    Object.defineProperty(Reflect, name, { value, configurable: true, writable: true });
  }
}

/** Options for {@link watchCertificateFiles}. */
export interface WatchOptions {
  logger: Logger;
  /** How often the files are checked (default 2000 ms). */
  intervalMs?: number;
  /**
   * The pair being served now (as read at start); changes are relative to it. Read from the
   * files when not given.
   */
  initial?: PemPair;
}

/**
 * Watches a certificate and key file and calls `onChange` with the new pair once both read back
 * as a matching certificate and key. Works with cert-manager and Kubernetes Secret volumes,
 * which replace the files through an atomic swap of the `..data` symlink (inotify on the files
 * alone misses that): every `intervalMs` both paths are `stat`ed through their symlinks (times,
 * size, inode); after a change the files are read only once the stat has held still for one
 * more interval (so a half-written file is not read), and `onChange` runs only when the content
 * differs from what is served.
 *
 * Logs one line per reload (`TLS certificate reloaded`) and one per rejected pair (unreadable,
 * unparsable or mismatched; the current certificate stays in service). A rejected or failed
 * pair is not retried until the files change again. `onChange` may return a promise; a
 * rejection is logged as a failed reload. The timer never keeps the process alive.
 */
export function watchCertificateFiles(
  certPath: string,
  keyPath: string,
  onChange: (pem: PemPair) => void | Promise<void>,
  opts: WatchOptions,
): { close(): void } {
  const log = opts.logger;
  const intervalMs = opts.intervalMs ?? 2000;
  const files = { cert: certPath, key: keyPath };
  let served: string | undefined; // content hash of the pair in service
  let tried: string | undefined; // content hash of the last pair rejected or failed
  try {
    served = pairHash(opts.initial ?? readPair(certPath, keyPath));
  } catch {
    served = undefined; // unreadable now: any readable matching pair later is a change
  }
  let lastStat = statSignature(certPath, keyPath);
  // Not settled: the first check compares contents once, in case the files changed between
  // the caller reading them and this watcher starting.
  let settled = false;
  let closed = false;
  let timer: ReturnType<typeof setTimeout> | undefined;

  const check = async () => {
    const stat = statSignature(certPath, keyPath);
    if (stat !== lastStat) {
      // Changed since the last look: wait until it holds still for one interval.
      lastStat = stat;
      settled = false;
      return;
    }
    if (settled) return;
    settled = true;
    let pem: PemPair;
    try {
      pem = readPair(certPath, keyPath);
    } catch (e) {
      const id = `unreadable:${stat}`;
      if (tried !== id) {
        tried = id;
        log.warn("TLS certificate files not reloaded; keeping the current certificate", {
          ...files,
          reason: errorLine(e),
        });
      }
      return;
    }
    const hash = pairHash(pem);
    if (hash === served || hash === tried) return;
    const problem = tlsMaterialProblem(pem);
    if (problem) {
      tried = hash;
      log.warn("TLS certificate files not reloaded; keeping the current certificate", {
        ...files,
        reason: problem,
      });
      return;
    }
    try {
      await onChange(pem);
    } catch (e) {
      tried = hash;
      log.error("TLS certificate reload failed; keeping the current certificate", {
        ...files,
        reason: errorLine(e),
      });
      return;
    }
    served = hash;
    tried = undefined;
    const x509 = new X509Certificate(pem.cert);
    const notAfter = new Date(x509.validTo);
    log.info("TLS certificate reloaded", {
      ...files,
      subject: x509.subject.replaceAll("\n", ", "),
      notAfter: isNaN(notAfter.getTime()) ? x509.validTo : notAfter.toISOString(),
    });
  };

  const schedule = () => {
    if (closed) return;
    timer = setTimeout(async () => {
      try {
        await check();
      } catch (e) {
        // Never an unhandled rejection from a timer: that would end the process.
        log.error("TLS certificate check failed", { ...files, reason: errorLine(e) });
      } finally {
        schedule(); // after the check, so a slow onChange never overlaps the next one
      }
    }, intervalMs);
    Deno.unrefTimer(timer);
  };
  schedule();
  return {
    close() {
      closed = true;
      clearTimeout(timer);
    },
  };
}

function readPair(certPath: string, keyPath: string): PemPair {
  return { cert: Deno.readTextFileSync(certPath), key: Deno.readTextFileSync(keyPath) };
}

function pairHash(pem: PemPair): string {
  return createHash("sha256").update(pem.cert).update("\0").update(pem.key).digest("hex");
}

/**
 * mtime, ctime, size, device and inode of both files (following symlinks; a `..data` swap
 * changes the inode even when size and times happen to match), or the error when one cannot be
 * read.
 */
function statSignature(certPath: string, keyPath: string): string {
  return [certPath, keyPath].map((path) => {
    try {
      const s = Deno.statSync(path);
      return `${s.mtime?.getTime()}/${s.ctime?.getTime()}/${s.size}/${s.dev}/${s.ino}`;
    } catch (e) {
      return `error:${(e as Error).name}`;
    }
  }).join("|");
}
