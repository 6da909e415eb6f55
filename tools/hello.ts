// The floor of any Deno program, for `deno task bench`: the probe is measured against it. With
// `<host> <port>` it also sends one empty HTTP/2 POST over Deno's own client (h2c), the floor of
// the fast path; with `<host> <port> <ca.pem>` it completes one TLS handshake instead, the floor
// of a TLS probe (Deno's first TLS connection in a process pays a one-time set-up).
const [hostname, port, ca] = Deno.args;
if (ca) {
  const conn = await Deno.connectTls({
    hostname,
    port: Number(port),
    caCerts: [Deno.readTextFileSync(ca)],
    alpnProtocols: ["h2"],
  });
  await conn.handshake();
  conn.close();
} else if (port) {
  const client = Deno.createHttpClient({ http1: false, http2: true });
  const res = await fetch(`http://${hostname}:${port}/`, { method: "POST", client, body: "" });
  await res.body?.cancel();
  client.close();
}
console.log("hello");
