import { haveCurl } from "../tests/helpers.ts";
import { capturingLogger } from "./log.ts";
import { createPrivateKey, X509Certificate } from "node:crypto";
import tls from "node:tls";
import { assert, assertEquals, assertEventually, assertMatch } from "../tests/assert.ts";
import { certText } from "../tests/helpers.ts";
import { type PemPair, selfSignedCertificate, watchCertificateFiles } from "./certificates.ts";
import { serveHealth } from "./listen.ts";
import { tlsMaterialProblem } from "./tls_material.ts";

const DAY_MS = 86_400_000;
const ca = certText("ca.pem");
const client = { cert: certText("client.pem"), key: certText("client-key.pem") };
const pairA: PemPair = { cert: certText("server.pem"), key: certText("server-key.pem") };
const pairB: PemPair = {
  cert: certText("other-server.pem"),
  key: certText("other-server-key.pem"),
};

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Fetches with a dedicated client (closed afterwards). */
async function fetchWith(
  url: string,
  opts: Deno.CreateHttpClientOptions & { cert?: string; key?: string },
): Promise<{ status: number; text: string }> {
  const httpClient = Deno.createHttpClient(opts);
  try {
    const res = await fetch(url, { client: httpClient });
    return { status: res.status, text: await res.text() };
  } finally {
    httpClient.close();
  }
}

Deno.test("selfSignedCertificate: ECDSA P-256 serverAuth certificate for the loopback names", async () => {
  const before = Date.now();
  const pem = await selfSignedCertificate();
  assertMatch(pem.cert, /^-----BEGIN CERTIFICATE-----\n[\s\S]+\n-----END CERTIFICATE-----\n$/);
  assertMatch(pem.key, /^-----BEGIN PRIVATE KEY-----\n[\s\S]+\n-----END PRIVATE KEY-----\n$/);
  const x509 = new X509Certificate(pem.cert);
  assertEquals(
    x509.subjectAltName,
    "DNS:localhost, IP Address:127.0.0.1, IP Address:::1",
  );
  assertEquals(x509.keyUsage, ["DigitalSignature"]);
  // node:crypto in Deno does not show the extended key usage; @peculiar/x509 does (loaded, with
  // its Reflect polyfill, by the call above).
  const peculiar = await import("@peculiar/x509");
  const eku = new peculiar.X509Certificate(pem.cert).getExtension(
    peculiar.ExtendedKeyUsageExtension,
  );
  assertEquals([...eku?.usages ?? []], [peculiar.ExtendedKeyUsage.serverAuth]);
  assertEquals(new peculiar.X509Certificate(pem.cert).signatureAlgorithm.hash.name, "SHA-256");
  assertEquals(x509.ca, false);
  assertEquals(x509.issuer, x509.subject);
  assert(x509.verify(x509.publicKey), "self-signed: verifies with its own key");
  assertEquals(x509.publicKey.asymmetricKeyType, "ec");
  assertEquals(x509.publicKey.asymmetricKeyDetails?.namedCurve, "prime256v1");
  assert(x509.checkPrivateKey(createPrivateKey(pem.key)));
  const from = Date.parse(x509.validFrom);
  const to = Date.parse(x509.validTo);
  assert(Math.abs(from - (before - DAY_MS)) < 60_000, `validFrom ${x509.validFrom}`);
  assert(Math.abs(to - (before + 365 * DAY_MS)) < 60_000, `validTo ${x509.validTo}`);
  assertEquals(tlsMaterialProblem(pem), undefined);
  // Each call makes a new key and serial number.
  const again = new X509Certificate((await selfSignedCertificate()).cert);
  assert(again.serialNumber !== x509.serialNumber);
  assert(again.fingerprint256 !== x509.fingerprint256);
});

Deno.test("selfSignedCertificate: extra hostnames and IPs, validity in days, bad input", async () => {
  const pem = await selfSignedCertificate({
    hostnames: ["Proxy.Example.com", "10.0.0.7", "[fd00::7]", "*.svc.cluster.local", "localhost"],
    days: 30,
  });
  const x509 = new X509Certificate(pem.cert);
  assertEquals(
    x509.subjectAltName,
    "DNS:localhost, IP Address:127.0.0.1, IP Address:::1, DNS:proxy.example.com, " +
      "IP Address:10.0.0.7, IP Address:fd00::7, DNS:*.svc.cluster.local",
  );
  assert(Math.abs(Date.parse(x509.validTo) - (Date.now() + 30 * DAY_MS)) < 60_000);
  assert(x509.checkHost("proxy.example.com") !== undefined);
  assert(x509.checkIP("10.0.0.7") !== undefined);
  for (const days of [0, -1, NaN, Infinity]) {
    const e = await selfSignedCertificate({ days }).then(() => undefined, (e) => e);
    assert(e instanceof RangeError, `days ${days}`);
  }
  for (const name of ["bad host", "a..b", "1.2.3.999", "[zz::1]", "a.*.b", "-x.example"]) {
    const e = await selfSignedCertificate({ hostnames: [name] }).then(() => undefined, (e) => e);
    assert(e instanceof RangeError, `hostname ${name}`);
    assertMatch((e as Error).message, /invalid certificate hostname/);
  }
});

Deno.test("selfSignedCertificate: served by a real Deno.serve TLS listener (fetch, curl -k)", async () => {
  const pem = await selfSignedCertificate();
  const l = await serveHealth({
    addr: "localhost:0",
    handler: () => new Response("SERVING\n"),
    tls: pem,
    logger: capturingLogger().logger,
  });
  try {
    for (const host of ["localhost", "127.0.0.1"]) {
      const res = await fetchWith(`https://${host}:${l.port}/`, { caCerts: [pem.cert] });
      assertEquals([res.status, res.text], [200, "SERVING\n"], host);
    }
    // A client that verifies against the system roots refuses it.
    const refused = await fetchWith(`https://localhost:${l.port}/`, {}).then(
      () => false,
      () => true,
    );
    assert(refused, "a verifying client must refuse a self-signed certificate");
    if (await haveCurl("curl -k against the self-signed certificate")) {
      for (const [flag, version] of [["--http2", "2"], ["--http1.1", "1.1"]]) {
        const out = await new Deno.Command("curl", {
          args: ["-sS", "-k", flag, "--max-time", "10", "-w", " %{http_code} %{http_version}"]
            .concat(`https://localhost:${l.port}/`),
          stdout: "piped",
        }).output();
        assertEquals(new TextDecoder().decode(out.stdout), `SERVING\n 200 ${version}`, flag);
      }
    }
  } finally {
    await l.shutdown();
  }
});

Deno.test("selfSignedCertificate: loads in node:tls (mTLS listener and createSecureContext)", async () => {
  const pem = await selfSignedCertificate();
  tls.createSecureContext({ cert: pem.cert, key: pem.key });
  // -https-self-signed with -https-listen-verify: the TLS gate (node:tls) serves it.
  const l = await serveHealth({
    addr: "localhost:0",
    handler: () => new Response("SERVING\n"),
    tls: pem,
    clientCa: ca,
    logger: capturingLogger().logger,
  });
  try {
    const res = await fetchWith(`https://localhost:${l.port}/`, {
      caCerts: [pem.cert],
      ...client,
      http2: false,
    });
    assertEquals([res.status, res.text], [200, "SERVING\n"]);
  } finally {
    await l.shutdown();
  }
});

// --- watchCertificateFiles ---------------------------------------------------------------------

const INTERVAL = 20;

/** A watcher on `dir/tls.crt` and `dir/tls.key` that records what it reports. */
function watch(dir: string, initial?: PemPair) {
  const { logger, lines } = capturingLogger();
  const changes: PemPair[] = [];
  let onChange: (pem: PemPair) => void | Promise<void> = (pem) => {
    changes.push(pem);
  };
  const watcher = watchCertificateFiles(
    `${dir}/tls.crt`,
    `${dir}/tls.key`,
    (pem) => onChange(pem),
    { logger, intervalMs: INTERVAL, initial },
  );
  const count = (level: string) => lines.filter((l) => l.level === level).length;
  return {
    changes,
    lines,
    count,
    close: () => watcher.close(),
    setOnChange: (f: typeof onChange) => onChange = f,
  };
}

function writePair(dir: string, pem: Partial<PemPair>): void {
  if (pem.cert !== undefined) Deno.writeTextFileSync(`${dir}/tls.crt`, pem.cert);
  if (pem.key !== undefined) Deno.writeTextFileSync(`${dir}/tls.key`, pem.key);
}

Deno.test("watchCertificateFiles: a rewrite of both files is reported once; no change is quiet", async () => {
  const dir = await Deno.makeTempDir({ prefix: "certwatch_" });
  writePair(dir, pairA);
  const w = watch(dir, pairA);
  try {
    // Nothing changes: no call, no log line.
    await sleep(INTERVAL * 10);
    assertEquals([w.changes.length, w.lines.length], [0, 0]);
    // Rewriting the same content (new mtime) is not a change either.
    writePair(dir, pairA);
    await sleep(INTERVAL * 10);
    assertEquals([w.changes.length, w.lines.length], [0, 0]);

    writePair(dir, pairB);
    await assertEventually(() => w.changes.length === 1, "the reload");
    assertEquals(w.changes[0], pairB);
    await sleep(INTERVAL * 10);
    assertEquals(w.changes.length, 1, "reported once");
    assertEquals(w.lines.map((l) => `${l.level} ${l.msg}`), ["info TLS certificate reloaded"]);
  } finally {
    w.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("watchCertificateFiles: a half-written (mismatched) pair is refused until complete", async () => {
  const dir = await Deno.makeTempDir({ prefix: "certwatch_" });
  writePair(dir, pairA);
  const w = watch(dir); // reads the initial pair itself
  try {
    writePair(dir, { cert: pairB.cert }); // the key is not there yet
    await assertEventually(() => w.count("warn") === 1, "the refusal");
    await sleep(INTERVAL * 10);
    assertEquals(w.changes.length, 0, "a mismatched pair is never reported");
    assertEquals(w.count("warn"), 1, "one line per refused pair");
    assertMatch(w.lines[0].msg, /not reloaded; keeping the current certificate/);
    assertEquals(
      (w.lines[0] as { fields?: { reason?: string } }).fields?.reason,
      "the private key does not match the certificate",
    );

    writePair(dir, { key: pairB.key });
    await assertEventually(() => w.changes.length === 1, "the reload");
    assertEquals(w.changes[0], pairB);
    assertEquals(w.count("info"), 1);

    // Unreadable (key removed): one line, nothing reported; back to the served pair: quiet.
    Deno.removeSync(`${dir}/tls.key`);
    await assertEventually(() => w.count("warn") === 2, "the unreadable refusal");
    writePair(dir, { key: pairB.key });
    await sleep(INTERVAL * 10);
    assertEquals([w.changes.length, w.count("warn"), w.count("info")], [1, 2, 1]);
  } finally {
    w.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("watchCertificateFiles: a Kubernetes Secret '..data' symlink swap is reported", async () => {
  // The layout kubelet and cert-manager produce: dir/tls.crt -> ..data/tls.crt,
  // dir/..data -> ..2026_v1; an update writes a new directory and renames a new ..data over the
  // old symlink (atomic), so the watched paths themselves are never written.
  const dir = await Deno.makeTempDir({ prefix: "certwatch_" });
  const version = (name: string, pem: PemPair) => {
    Deno.mkdirSync(`${dir}/${name}`);
    Deno.writeTextFileSync(`${dir}/${name}/tls.crt`, pem.cert);
    Deno.writeTextFileSync(`${dir}/${name}/tls.key`, pem.key);
  };
  version("..2026_v1", pairA);
  Deno.symlinkSync("..2026_v1", `${dir}/..data`);
  Deno.symlinkSync("..data/tls.crt", `${dir}/tls.crt`);
  Deno.symlinkSync("..data/tls.key", `${dir}/tls.key`);
  const w = watch(dir, pairA);
  try {
    await sleep(INTERVAL * 5);
    assertEquals(w.lines.length, 0);
    const selfSigned = await selfSignedCertificate();
    version("..2026_v2", selfSigned);
    Deno.symlinkSync("..2026_v2", `${dir}/..data_tmp`);
    Deno.renameSync(`${dir}/..data_tmp`, `${dir}/..data`);
    Deno.removeSync(`${dir}/..2026_v1`, { recursive: true });
    await assertEventually(() => w.changes.length === 1, "the reload after the symlink swap");
    assertEquals(w.changes[0], selfSigned);

    // And a second swap, back to pair B.
    version("..2026_v3", pairB);
    Deno.symlinkSync("..2026_v3", `${dir}/..data_tmp`);
    Deno.renameSync(`${dir}/..data_tmp`, `${dir}/..data`);
    Deno.removeSync(`${dir}/..2026_v2`, { recursive: true });
    await assertEventually(() => w.changes.length === 2, "the second reload");
    assertEquals(w.changes[1], pairB);
    assertEquals(w.lines.map((l) => l.level), ["info", "info"]);
  } finally {
    w.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("watchCertificateFiles: a failing onChange is logged and not retried; close stops it", async () => {
  const dir = await Deno.makeTempDir({ prefix: "certwatch_" });
  writePair(dir, pairA);
  const w = watch(dir, pairA);
  let calls = 0;
  w.setOnChange(() => {
    calls++;
    return Promise.reject(new Error("listener refused it"));
  });
  try {
    writePair(dir, pairB);
    await assertEventually(() => w.count("error") === 1, "the failed reload");
    await sleep(INTERVAL * 10);
    assertEquals(calls, 1, "the same failing pair is not tried again");
    assertMatch(w.lines[0].msg, /reload failed; keeping the current certificate/);
    w.close();
    writePair(dir, pairA);
    await sleep(INTERVAL * 10);
    assertEquals([calls, w.lines.length], [1, 1], "nothing after close()");
  } finally {
    w.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("watchCertificateFiles: its timer does not keep the process alive", async () => {
  const dir = await Deno.makeTempDir({ prefix: "certwatch_" });
  writePair(dir, pairA);
  try {
    const module = new URL("./certificates.ts", import.meta.url).href;
    const code = `import { watchCertificateFiles } from "${module}";
      watchCertificateFiles("${dir}/tls.crt", "${dir}/tls.key", () => {}, {
        logger: console, intervalMs: 50 });
      console.log("watching");`;
    const t0 = performance.now();
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["eval", "--no-check", code],
      signal: AbortSignal.timeout(5000), // kills the child if the timer does keep it alive
      stdout: "piped",
      stderr: "piped",
    }).output();
    const took = performance.now() - t0;
    assertEquals(new TextDecoder().decode(out.stdout), "watching\n");
    assert(out.success, new TextDecoder().decode(out.stderr));
    assert(took < 5000, `the process stayed alive for ${took} ms`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
