/**
 * `deno task soak:bursts [--only KIND] [--seconds N]`: server mode's resident memory (VmRSS)
 * before, during and for a minute after each kind of burst a hostile client or a broken upstream
 * can cause, one fresh server each:
 *
 * - `https-stall`: 1,000 TCP clients that send nothing and 1,000 that stop halfway through a
 *   TLS record, on the HTTPS listener, held until the server closes them (handshake timeout);
 * - `mtls-handshakes`: 10,000 new mTLS connections (a new client and handshake each, h2 and
 *   HTTP/1.1 alternating, 8 at a time), answered;
 * - `slow-readers`: 200 connections that pipeline 200 requests each and read nothing for 10 s;
 * - `goaway-upstream`: `wrk -c16` for N seconds (default 20) against an upstream that sends
 *   GOAWAY on every connection it accepts (also prints the connections it accepted and the log
 *   lines).
 *
 * The figures in docs/threat-model.md ("After a burst") come from it. `goaway-upstream` needs
 * `wrk` (apt-get install wrk).
 *
 * @module
 */

import { startRawUpstream } from "../tests/fixture/raw_upstream.ts";
import { HealthFixture } from "../tests/fixture/health_server.ts";
import { type MainProcess, spawnMain, stopMain } from "../tests/fixture/main_process.ts";
import { cert, certText } from "../tests/helpers.ts";
import { vmRssMb } from "./soak.ts";

const KINDS = ["https-stall", "mtls-handshakes", "slow-readers", "goaway-upstream"] as const;
type Kind = typeof KINDS[number];

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const arg = (name: string) => {
  const at = Deno.args.indexOf(name);
  return at >= 0 ? Deno.args[at + 1] : undefined;
};
const only = arg("--only");
const seconds = Number(arg("--seconds") ?? 20);
if (only !== undefined && !KINDS.includes(only as Kind)) {
  console.error(`--only wants one of ${KINDS.join(", ")}`);
  Deno.exit(2);
}
if (!Number.isFinite(seconds) || seconds <= 0) {
  console.error("--seconds wants a positive number, e.g. --seconds 20");
  Deno.exit(2);
}

/** Runs `burst` against a fresh server; prints RSS idle, its peak, at the end and for 60 s. */
async function measure(
  kind: Kind,
  flags: string[],
  burst: (proc: MainProcess) => Promise<string>,
): Promise<void> {
  const proc = await spawnMain([...flags, "-metrics-http-listen-addr="]);
  const rss = () => vmRssMb(proc.child.pid);
  const mb = (n: number) => `${Math.round(n)}`;
  try {
    await sleep(1000);
    const idle = await rss();
    let peak = idle;
    const sampler = setInterval(async () => peak = Math.max(peak, await rss()), 500);
    const said = await burst(proc);
    clearInterval(sampler);
    const end = await rss();
    peak = Math.max(peak, end);
    const after: string[] = [];
    for (let s = 15; s <= 60; s += 15) {
      await sleep(15_000);
      after.push(`+${s} s ${mb(await rss())}`);
    }
    const { stderr } = await stopMain(proc);
    const logLines = stderr.split("\n").filter((l) => l.trim()).length;
    console.log(
      `${kind}: RSS idle ${mb(idle)} MB, peak ${mb(peak)}, at the end ${mb(end)}, ` +
        `${after.join(", ")} MB; ${said}; ${logLines} log lines`,
    );
  } catch (e) {
    await stopMain(proc).catch(() => {});
    throw e;
  }
}

const tlsFlags = [
  `-https-listen-cert=${cert("server.pem")}`,
  `-https-listen-key=${cert("server-key.pem")}`,
];
const port = (proc: MainProcess) => Number(new URL(proc.urls[0]).port);

/** Silent and half-handshake TLS clients, held until the server closes them. */
async function httpsStall(proc: MainProcess): Promise<string> {
  const conns = await Promise.all(
    Array.from({ length: 2000 }, () => Deno.connect({ hostname: "127.0.0.1", port: port(proc) })),
  );
  // A TLS handshake record header that promises 512 bytes, and then nothing.
  const half = new Uint8Array([0x16, 0x03, 0x01, 0x02, 0x00, 0x01]);
  await Promise.all(conns.slice(1000).map((c) => c.write(half)));
  const t0 = performance.now();
  const closed = await Promise.all(conns.map(async (c) => {
    try {
      return await c.read(new Uint8Array(1)) === null;
    } catch {
      return true;
    } finally {
      c.close();
    }
  }));
  const after = ((performance.now() - t0) / 1000).toFixed(1);
  return `${closed.filter(Boolean).length} of 2000 closed by the server within ${after} s`;
}

/** New mTLS connections, each a fresh client and handshake. */
async function mtlsHandshakes(proc: MainProcess): Promise<string> {
  const opts = {
    caCerts: [certText("ca.pem")],
    cert: certText("client.pem"),
    key: certText("client-key.pem"),
  };
  const one = async (http2: boolean) => {
    const client = Deno.createHttpClient({ ...opts, http2, http1: !http2 });
    try {
      const res = await fetch(`https://localhost:${port(proc)}/`, { client });
      await res.body?.cancel();
      return res.status === 200;
    } catch {
      return false;
    } finally {
      client.close();
    }
  };
  let answered = 0;
  for (let i = 0; i < 10_000; i += 8) {
    const got = await Promise.all(Array.from({ length: 8 }, (_, k) => one((i + k) % 2 === 0)));
    answered += got.filter(Boolean).length;
  }
  return `${answered} of 10000 connections answered 200`;
}

/** Clients that pipeline requests and do not read the answers for 10 s. */
async function slowReaders(proc: MainProcess): Promise<string> {
  const requests = new TextEncoder().encode(
    "GET / HTTP/1.1\r\nhost: x\r\n\r\n".repeat(200),
  );
  const conns = await Promise.all(
    Array.from({ length: 200 }, () => Deno.connect({ hostname: "127.0.0.1", port: port(proc) })),
  );
  await Promise.all(conns.map((c) => c.write(requests).catch(() => 0)));
  await sleep(10_000);
  for (const c of conns) c.close();
  return "200 connections x 200 pipelined requests, unread for 10 s";
}

/** `wrk -c16` against an upstream that sends GOAWAY on every connection. */
function goawayUpstream(upstream: { connections: number }) {
  return async (proc: MainProcess): Promise<string> => {
    const out = await new Deno.Command("wrk", {
      args: ["-t2", "-c16", `-d${seconds}s`, proc.urls[0]],
      stdout: "piped",
    }).output();
    const rps = /Requests\/sec:\s+([\d.]+)/.exec(new TextDecoder().decode(out.stdout))?.[1];
    return `${rps ?? "?"} answers/s for ${seconds} s, upstream accepted ${upstream.connections} ` +
      "connections";
  };
}

const wanted = (k: Kind) => only === undefined || only === k;
const fixture = await HealthFixture.start();
try {
  const up = `-grpcaddr=${fixture.target}`;
  const listen = "-http-listen-addr=localhost:0";
  if (wanted("https-stall")) await measure("https-stall", [up, listen, ...tlsFlags], httpsStall);
  if (wanted("mtls-handshakes")) {
    const mtls = ["-https-listen-verify", `-https-listen-ca=${cert("ca.pem")}`];
    await measure("mtls-handshakes", [up, listen, ...tlsFlags, ...mtls], mtlsHandshakes);
  }
  if (wanted("slow-readers")) await measure("slow-readers", [up, listen], slowReaders);
  if (wanted("goaway-upstream")) {
    const upstream = await startRawUpstream("goaway");
    try {
      await measure(
        "goaway-upstream",
        [`-grpcaddr=${upstream.target}`, listen],
        goawayUpstream(upstream),
      );
    } finally {
      await upstream.close();
    }
  }
} finally {
  await fixture.stop();
}
