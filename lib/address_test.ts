import { assert, assertEquals, assertStringIncludes } from "../tests/assert.ts";
import { parseListenAddr, splitListenAddr } from "./address.ts";

Deno.test("parseListenAddr: accepted forms", () => {
  assertEquals(parseListenAddr("localhost:8080"), { hostname: "localhost", port: 8080 });
  assertEquals(parseListenAddr(":8080"), { hostname: "::", port: 8080 });
  assertEquals(parseListenAddr("0.0.0.0:8080"), { hostname: "0.0.0.0", port: 8080 });
  assertEquals(parseListenAddr("[::]:8080"), { hostname: "::", port: 8080 });
  assertEquals(parseListenAddr("[::1]:0"), { hostname: "::1", port: 0 });
  assertEquals(parseListenAddr("[fe80::1%eth0]:1"), { hostname: "fe80::1%eth0", port: 1 });
  assertEquals(parseListenAddr("10.0.0.1:65535"), { hostname: "10.0.0.1", port: 65535 });
});

Deno.test("parseListenAddr: malformed addresses are RangeErrors with one-line messages", () => {
  for (
    const addr of [
      "",
      "localhost",
      "localhost:",
      "localhost:http",
      "localhost:65536",
      "localhost:-1",
      "::1:8080",
      "[::1]8080",
      "[::1",
      "[localhost]:80",
      "[1.2.3.4]:80",
      "[]:80",
      "bad host:80",
      "a/b:80",
    ]
  ) {
    try {
      parseListenAddr(addr);
      throw new Error(`accepted ${JSON.stringify(addr)}`);
    } catch (e) {
      assert(e instanceof RangeError, `${addr}: ${e}`);
      assertStringIncludes(e.message, `invalid listen address "${addr}"`);
      assert(!e.message.includes("\n"));
    }
  }
});

Deno.test("splitListenAddr: the reason is the flag message's tail", () => {
  assertEquals(splitListenAddr("[1.2.3.4]:80"), {
    error: '"1.2.3.4" is not an IPv6 address (brackets are only for IPv6)',
  });
  assertEquals(splitListenAddr(":0"), { hostname: "::", port: 0 });
});
