// The floor of any Deno program, for `deno task bench`: the probe is measured against it. With an
// argument it also does the least a probe's transport must do, so that the probe's own cost shows:
// - `tcp <host> <port>`: one TCP connection that sends the HTTP/2 preface and reads the server's
//   first frame (the floor of the fast path, which speaks HTTP/2 itself over `Deno.connect`);
// - `fetch <host> <port>`: one empty HTTP/2 POST over Deno's own client (h2c), for comparison;
// - `tls <host> <port> <ca.pem>`: one TLS handshake (Deno's first TLS connection in a process
//   pays a one-time set-up).
const [what, hostname, port, ca] = Deno.args;
if (what === "tls") {
  const conn = await Deno.connectTls({
    hostname,
    port: Number(port),
    caCerts: [Deno.readTextFileSync(ca)],
    alpnProtocols: ["h2"],
  });
  await conn.handshake();
  conn.close();
} else if (what === "tcp") {
  const conn = await Deno.connect({ hostname, port: Number(port) });
  const preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0"; // + empty SETTINGS
  await conn.write(Uint8Array.from(preface, (c) => c.charCodeAt(0)));
  await conn.read(new Uint8Array(1024));
  conn.close();
} else if (what === "fetch") {
  const client = Deno.createHttpClient({ http1: false, http2: true });
  const res = await fetch(`http://${hostname}:${port}/`, { method: "POST", client, body: "" });
  await res.body?.cancel();
  client.close();
}
console.log("hello");
