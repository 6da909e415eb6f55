import { assertEquals, assertMatch, assertThrows } from "../tests/assert.ts";
import { cert, certText } from "../tests/helpers.ts";
import { type PemPair, readPemFile, TlsFileError, tlsMaterialProblem } from "./tls_material.ts";

const pairA: PemPair = { cert: certText("server.pem"), key: certText("server-key.pem") };
const pairB: PemPair = {
  cert: certText("other-server.pem"),
  key: certText("other-server-key.pem"),
};

Deno.test("tlsMaterialProblem: matching, mismatched and unparsable pairs and CAs", () => {
  assertEquals(tlsMaterialProblem(pairA), undefined);
  assertEquals(tlsMaterialProblem({ ...pairB, ca: certText("ca.pem") }), undefined);
  assertEquals(tlsMaterialProblem({}), undefined);
  assertEquals(
    tlsMaterialProblem({ cert: pairA.cert, key: pairB.key }),
    "the private key does not match the certificate",
  );
  assertMatch(String(tlsMaterialProblem({ cert: "x", key: pairA.key })), /^bad certificate: /);
  assertMatch(String(tlsMaterialProblem({ cert: pairA.cert, key: "x" })), /^bad private key: /);
  assertMatch(String(tlsMaterialProblem({ ca: pairA.key })), /^bad CA certificate: /);
  // Messages use the caller's names for the parts (flags, for the upstream's files).
  const names = { cert: "-tls-client-cert", key: "-tls-client-key", ca: "-tls-ca-cert" };
  assertEquals(
    tlsMaterialProblem({ cert: pairA.cert, key: pairB.key }, names),
    "the -tls-client-key does not match the -tls-client-cert",
  );
  for (const p of [tlsMaterialProblem({ cert: "x" }), tlsMaterialProblem({ key: "x" })]) {
    assertEquals(p?.includes("\n"), false);
  }
});

Deno.test("readPemFile: the text, or one line naming the flag and the path", () => {
  assertEquals(readPemFile("-tls-ca-cert", cert("ca.pem")), certText("ca.pem"));
  const missing = assertThrows(() => readPemFile("-tls-ca-cert", "/nonexistent/ca.pem"));
  assertEquals(missing instanceof TlsFileError, true);
  assertEquals(
    (missing as Error).message,
    'cannot read -tls-ca-cert file "/nonexistent/ca.pem": ENOENT',
  );
  const notPem = Deno.makeTempFileSync();
  try {
    Deno.writeTextFileSync(notPem, "not a certificate");
    const e = assertThrows(() => readPemFile("-https-listen-cert", notPem));
    assertEquals((e as Error).message, `-https-listen-cert file "${notPem}" holds no PEM data`);
  } finally {
    Deno.removeSync(notPem);
  }
});
