/**
 * The operator page end to end: the real server in front of the real fixture, state changes
 * made upstream, the page read by fetch (JSON schema, HTML well-formedness) and rendered by a
 * real headless Chromium (screenshot decoded and checked, DOM dumped). Without `chromium` the
 * browser tests are ignored, and say why.
 */

import { assert, assertEquals, assertEventually, assertStringIncludes } from "./assert.ts";
import { HealthFixture } from "./fixture/health_server.ts";
import { serveInFront } from "./helpers.ts";
import { htmlProblems, schemaProblems, statusSchema } from "./status_page_checks.ts";
import type { RunningServer } from "../lib/server.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

/** A service name a client chose, with markup in it (no spaces: those are refused). */
const HOSTILE = "<img/src=x/onerror=alert(1)>";

function haveChromium(): boolean {
  try {
    return new Deno.Command("chromium", { args: ["--version"], stdout: "null", stderr: "null" })
      .outputSync().success;
  } catch {
    return false;
  }
}
const chromium = haveChromium();
if (!chromium) {
  console.warn(
    "SKIPPED (chromium not installed; apt-get install chromium): status page browser tests",
  );
}

/**
 * A server in front of a fixture whose `flip.Svc` went SERVING -> NOT_SERVING -> SERVING, and
 * that was asked about {@link HOSTILE}; runs `body`, then stops both.
 */
async function withFlippedServer(body: (server: RunningServer) => Promise<void>): Promise<void> {
  const fixture = await HealthFixture.start({ statuses: { "": "SERVING", "flip.Svc": "SERVING" } });
  const server = await serveInFront(fixture);
  try {
    const health = (service: string) =>
      fetch(`${server.health.url}/?serviceName=${encodeURIComponent(service)}`).then((r) => {
        void r.body?.cancel();
        return r.status;
      });
    assertEquals(await health("flip.Svc"), 200);
    fixture.setStatus("flip.Svc", "NOT_SERVING");
    assertEquals(await health("flip.Svc"), 503);
    fixture.setStatus("flip.Svc", "SERVING");
    assertEquals(await health("flip.Svc"), 200);
    assertEquals(await health(HOSTILE), 404);
    await body(server);
  } finally {
    await server.stop();
    await fixture.stop();
  }
}

Deno.test(
  "the status page's JSON shows the services and the flips, and fits the schema",
  opts,
  () =>
    withFlippedServer(async (server) => {
      const res = await fetch(`${server.metrics!.url}/status.json`);
      assertEquals(res.status, 200);
      const json = await res.json();
      assertEquals(schemaProblems(json, statusSchema), []);
      assertEquals(json.mode, "on demand");
      assertEquals(json.upstream.tls, "plaintext");
      const flips = json.changes
        .filter((c: { service: string }) => c.service === "flip.Svc")
        .map((c: { from: string | null; to: string; http: number }) => [c.from, c.to, c.http]);
      assertEquals(flips, [["NOT_SERVING", "SERVING", 200], ["SERVING", "NOT_SERVING", 503], [
        null,
        "SERVING",
        200,
      ]]);
      const services = json.services.map((s: { service: string; outcome: string }) => [
        s.service,
        s.outcome,
      ]);
      assertEquals(services, [[HOSTILE, "NOT_FOUND"], ["flip.Svc", "SERVING"]]);
      // Four answers were observed; a complete second may not have passed yet, so only the shape.
      assert(json.answers.answersPerSecond >= 0);
      // The metrics are still where they were.
      const metrics = await fetch(`${server.metrics!.url}/metrics`);
      assertStringIncludes(await metrics.text(), "grpc_health_proxy_state_changes_total");
    }),
);

Deno.test(
  "the status page's HTML is well-formed and escapes client-chosen names",
  opts,
  () =>
    withFlippedServer(async (server) => {
      const res = await fetch(`${server.metrics!.url}/status`, {
        headers: { accept: "text/html" },
      });
      assertEquals(res.headers.get("content-type"), "text/html; charset=utf-8");
      const html = await res.text();
      assertEquals(htmlProblems(html), []);
      assert(!html.includes("<img"), "a client's service name became markup");
      assertStringIncludes(html, "<code>flip.Svc</code>");
      assertStringIncludes(html, "&lt;img/src=x/onerror=alert(1)&gt;");
    }),
);

/** Runs headless Chromium on `url` with `args`; its stdout. */
async function runChromium(dir: string, args: string[], url: string): Promise<string> {
  const out = await new Deno.Command("chromium", {
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      `--user-data-dir=${dir}/profile`,
      ...args,
      url,
    ],
    stdout: "piped",
    stderr: "piped",
    // Bounds a hung browser; it does not measure speed.
    signal: AbortSignal.timeout(120_000),
  }).output();
  assert(out.success, `chromium failed: ${new TextDecoder().decode(out.stderr).slice(-500)}`);
  return new TextDecoder().decode(out.stdout);
}

/** The PNG's size and its number of distinct colours (8-bit grey, grey+alpha, RGB or RGBA). */
async function decodePng(
  png: Uint8Array,
): Promise<{ width: number; height: number; colours: number }> {
  const signature = [137, 80, 78, 71, 13, 10, 26, 10];
  assertEquals([...png.slice(0, 8)], signature, "PNG signature");
  const view = new DataView(png.buffer, png.byteOffset, png.byteLength);
  let width = 0, height = 0, bpp = 0;
  const idat: Uint8Array[] = [];
  for (let at = 8; at < png.length;) {
    const length = view.getUint32(at);
    const type = new TextDecoder().decode(png.slice(at + 4, at + 8));
    const data = png.slice(at + 8, at + 8 + length);
    if (type === "IHDR") {
      width = view.getUint32(at + 8);
      height = view.getUint32(at + 12);
      assertEquals([data[8], data[12]], [8, 0], "8-bit, not interlaced");
      bpp = ({ 0: 1, 2: 3, 4: 2, 6: 4 } as Record<number, number>)[data[9]];
    } else if (type === "IDAT") idat.push(data);
    at += 12 + length;
  }
  const raw = new Uint8Array(
    await new Response(
      new Blob(idat as BlobPart[]).stream().pipeThrough(new DecompressionStream("deflate")),
    ).arrayBuffer(),
  );
  // Undo the per-row filters (PNG spec, section 9), then count colours.
  const stride = width * bpp;
  const pixels = new Uint8Array(stride * height);
  for (let y = 0; y < height; y++) {
    const filter = raw[y * (stride + 1)];
    for (let x = 0; x < stride; x++) {
      const v = raw[y * (stride + 1) + 1 + x];
      const a = x >= bpp ? pixels[y * stride + x - bpp] : 0;
      const b = y > 0 ? pixels[(y - 1) * stride + x] : 0;
      const c = x >= bpp && y > 0 ? pixels[(y - 1) * stride + x - bpp] : 0;
      const p = a + b - c;
      const paeth = Math.abs(p - a) <= Math.abs(p - b) && Math.abs(p - a) <= Math.abs(p - c)
        ? a
        : Math.abs(p - b) <= Math.abs(p - c)
        ? b
        : c;
      const predicted = [0, a, b, (a + b) >> 1, paeth][filter];
      pixels[y * stride + x] = (v + predicted) & 0xff;
    }
  }
  const colours = new Set<string>();
  for (let i = 0; i < pixels.length && colours.size < 1000; i += bpp) {
    colours.add(pixels.slice(i, i + bpp).join(","));
  }
  return { width, height, colours: colours.size };
}

Deno.test({
  name: "headless Chromium renders the status page: a real screenshot and the DOM",
  ignore: !chromium,
  ...opts,
  fn: () =>
    withFlippedServer(async (server) => {
      const dir = await Deno.makeTempDir({ prefix: "status_page_" });
      try {
        const url = `${server.metrics!.url}/status`;
        const shot = `${dir}/status.png`;
        await runChromium(dir, [`--screenshot=${shot}`, "--window-size=1200,900"], url);
        const png = await Deno.readFile(shot);
        assert(png.length > 5_000, `screenshot is only ${png.length} bytes`);
        const decoded = await decodePng(png);
        assertEquals([decoded.width, decoded.height], [1200, 900]);
        // White page, text, green and red cells, borders: a blank or failed render has 1 or 2.
        assert(decoded.colours > 20, `screenshot has ${decoded.colours} colours`);

        const dom = await runChromium(dir, ["--dump-dom"], url);
        assertStringIncludes(dom, "<h1>grpc_health_proxy status</h1>");
        assertStringIncludes(dom, "<code>flip.Svc</code>");
        assertStringIncludes(dom, "NOT_SERVING");
        // The browser parsed the hostile name as text: no element came of it.
        assertStringIncludes(dom, "&lt;img/src=x/onerror=alert(1)&gt;");
        assert(!dom.includes("<img"), "the browser built an element from a service name");
        const changeRows = dom.match(/<tr><td>\d{4}-\d\d-\d\dT[^<]*<\/td><td><code>flip\.Svc/g);
        assertEquals(changeRows?.length, 3, "the three flip.Svc changes");
      } finally {
        await Deno.remove(dir, { recursive: true });
      }
    }),
});

Deno.test(
  "background checking's changes reach the page; -status-http-path= turns it off",
  opts,
  async () => {
    const fixture = await HealthFixture.start({ statuses: { "flip.Svc": "SERVING" } });
    const server = await serveInFront(fixture, ["-check-interval=50ms", "-service-name=flip.Svc"]);
    const off = await serveInFront(fixture, ["-status-http-path="]);
    try {
      const page = async () => await (await fetch(`${server.metrics!.url}/status.json`)).json();
      fixture.setStatus("flip.Svc", "NOT_SERVING");
      await assertEventually(
        async () => (await page()).services[0]?.outcome === "NOT_SERVING",
        "the background flip on the page",
      );
      const json = await page();
      assertEquals(schemaProblems(json, statusSchema), []);
      assertEquals([json.mode, json.intervalMs], ["interval", 50]);
      assertEquals(json.changes.map((c: { to: string }) => c.to), ["NOT_SERVING", "SERVING"]);

      const gone = await fetch(`${off.metrics!.url}/status`);
      assertEquals([gone.status, await gone.text()], [404, "not found\n"]);
      const metrics = await fetch(`${off.metrics!.url}/metrics`);
      assertEquals(metrics.status, 200);
      await metrics.body?.cancel();
    } finally {
      await server.stop();
      await off.stop();
      await fixture.stop();
    }
  },
);
