import { assertEquals } from "../tests/assert.ts";
import { certText } from "../tests/helpers.ts";
import { makeClientCerts } from "../tests/fixture/client_certs.ts";
import { capturingLogger } from "./log.ts";
import { clientCertChecker, refusalLog, x509Version } from "./client_cert.ts";
import { loadX509 } from "./certificates.ts";

async function der(pem: string): Promise<Uint8Array<ArrayBuffer>> {
  const x509 = await loadX509();
  return new Uint8Array(x509.PemConverter.decode(pem)[0]);
}

Deno.test("client certificate checks: each accepted and refused kind, with its reason", async () => {
  const made = await makeClientCerts();
  try {
    const check = await clientCertChecker(certText("ca.pem"));
    const checkV1 = await clientCertChecker(certText("ca.pem"), { allowV1: true });
    const now = new Date();
    const cases: [string, string[], string | undefined][] = [
      ["v3 from the CA", [certText("client.pem")], undefined],
      ["v3 via an intermediate", [made.viaIntermediate.cert, made.intermediate], undefined],
      ["intermediate not sent", [made.viaIntermediate.cert], "other CA"],
      ["v1 from the CA", [made.v1.cert], "X.509 v1"],
      ["expired", [certText("expired-client.pem")], "expired"],
      ["not yet valid", [certText("notyet-client.pem")], "not yet valid"],
      ["other CA", [certText("other-client.pem")], "other CA"],
      ["self-signed", [made.selfSigned.cert], "self-signed"],
      ["server-only", [made.serverOnly.cert], "wrong usage"],
      ["no digitalSignature", [made.noDigitalSignature.cert], "wrong usage"],
      ["the CA itself", [certText("ca.pem")], "wrong usage"],
      ["none", [], "no certificate"],
    ];
    for (const [name, pems, want] of cases) {
      const chain = await Promise.all(pems.map(der));
      assertEquals(await check(chain, now), want, name);
    }
    assertEquals(await checkV1([await der(made.v1.cert)], now), undefined, "v1 allowed");
    assertEquals(await check([new Uint8Array([0x30, 0x03, 1, 2, 3])], now), "bad certificate");
    assertEquals(x509Version(await der(made.v1.cert)), 1);
    assertEquals(x509Version(await der(certText("client.pem"))), 3);
  } finally {
    await made.remove();
  }
});

Deno.test("client certificate refusals: one warning each, at most N per interval, then a count", () => {
  const { logger, lines } = capturingLogger();
  let t = 1_000;
  const timers: (() => void)[] = [];
  const log = refusalLog(logger, {
    maxLines: 3,
    intervalMs: 10_000,
    now: () => t,
    later: (fn) => {
      timers.push(fn);
      return () => timers.splice(timers.indexOf(fn), 1);
    },
  });
  for (let i = 0; i < 8; i++) log.refused("expired", `127.0.0.1:${5000 + i}`);
  assertEquals(lines.length, 3);
  assertEquals(lines[0], {
    level: "warn",
    msg: "client certificate refused",
    fields: { reason: "expired", peer: "127.0.0.1:5000" },
  });
  // The interval ends: the timer writes the count of the 5 dropped.
  assertEquals(timers.length, 1);
  t += 10_000;
  timers.shift()!(); // a timer that fires is gone
  assertEquals(lines.length, 4);
  assertEquals(lines[3].fields, { count: 5, intervalMs: 10_000 });
  // A new interval logs again.
  log.refused("other CA", "[::1]:6000");
  assertEquals(lines.length, 5);
  assertEquals(lines[4].fields, { reason: "other CA", peer: "[::1]:6000" });
  // Dropped ones pending at close are counted then.
  for (let i = 0; i < 4; i++) log.refused("self-signed", "127.0.0.1:7000");
  log.close();
  assertEquals(lines.length, 8);
  assertEquals(lines[7].fields, { count: 2, intervalMs: 10_000 });
  assertEquals(timers.length, 0);
});
