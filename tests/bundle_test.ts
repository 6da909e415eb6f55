/**
 * `deno task build`: the bundle is one self-contained file. It is copied to a temporary
 * directory outside the repository and run there as a user would, with an empty Deno cache
 * (`DENO_DIR`), `--no-config`, a clean environment whose npm registry is a closed loopback port
 * (so any download would fail), and the documented permissions, against the real fixture:
 * probe, runcli, `-version`, the `grpc_health_probe` name, and server mode up to SIGTERM. It
 * also prints (does not assert) the bundle's probe start-up time with a writable and with an
 * unusable `DENO_DIR`.
 *
 * @module
 */

import denoJson from "../deno.json" with { type: "json" };
import { assert, assertEquals, assertMatch, assertStringIncludes } from "./assert.ts";
import { HealthFixture } from "./fixture/health_server.ts";
import { closedPort, programPermissions, root, type RunResult } from "./helpers.ts";
import { stopMain, watchListening } from "./fixture/main_process.ts";

const BUNDLE = "dist/grpc_health_proxy.js";
const decoder = new TextDecoder();

/** A directory to run the bundle in, and a Deno cache that starts empty. */
interface Sandbox {
  dir: string;
  denoDir: string;
}

/** The clean environment of a bundle run: no DENO_* or npm settings leak in from ours. */
function sandboxEnv(box: Sandbox, denoDir = box.denoDir): Record<string, string> {
  return {
    PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
    HOME: box.dir,
    DENO_DIR: denoDir,
    NO_COLOR: "1",
    DENO_NO_UPDATE_CHECK: "1",
    // Anything that tried to fetch an npm package would fail here, not quietly succeed.
    NPM_CONFIG_REGISTRY: `http://127.0.0.1:${closedPort()}/`,
  };
}

/** How to run the bundle: another cache, extra `deno run` flags, a command to run deno under. */
interface BundleRunOptions {
  denoDir?: string;
  extraFlags?: string[];
  /** e.g. `["setpriv", "--reuid=65534", ...]`: deno runs as its last arguments. */
  wrapper?: string[];
}

function bundleCommand(
  box: Sandbox,
  script: string,
  args: string[],
  opts: BundleRunOptions = {},
): Deno.Command {
  const deno = [
    Deno.execPath(),
    "run",
    "--no-config",
    ...(opts.extraFlags ?? []),
    ...programPermissions,
    script,
    ...args,
  ];
  const [cmd, ...cmdArgs] = [...(opts.wrapper ?? []), ...deno];
  return new Deno.Command(cmd, {
    args: cmdArgs,
    cwd: box.dir,
    clearEnv: true,
    env: sandboxEnv(box, opts.denoDir),
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  });
}

async function runBundle(
  box: Sandbox,
  script: string,
  args: string[],
  opts: BundleRunOptions = {},
): Promise<RunResult & { ms: number }> {
  const start = performance.now();
  const out = await bundleCommand(box, script, args, opts).output();
  const ms = performance.now() - start;
  return {
    code: out.code,
    stdout: decoder.decode(out.stdout),
    stderr: decoder.decode(out.stderr),
    ms,
  };
}

async function hasSetpriv(): Promise<boolean> {
  try {
    return (await new Deno.Command("setpriv", { args: ["--version"] }).output()).success;
  } catch {
    return false;
  }
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

/** Polls `url` until it answers `status` (or fails after `ms`). */
async function waitForStatus(url: string, status: number, ms: number): Promise<Response> {
  const deadline = Date.now() + ms;
  let last = "no answer";
  while (Date.now() < deadline) {
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(2000) });
      const body = await res.text();
      if (res.status === status) return new Response(body, { status: res.status });
      last = `${res.status} ${body}`;
    } catch (err) {
      last = (err as Error).message;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${url}: expected ${status}, last: ${last}`);
}

Deno.test({
  name: "bundle: one self-contained file that runs anywhere with an empty Deno cache",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn(t) {
    const build = await new Deno.Command(Deno.execPath(), {
      args: ["task", "build"],
      cwd: root,
      env: { NO_COLOR: "1" },
      stdout: "piped",
      stderr: "piped",
    }).output();
    assertEquals(build.code, 0, `deno task build failed:\n${decoder.decode(build.stderr)}`);
    const text = await Deno.readTextFile(`${root}${BUNDLE}`);

    await t.step("inlines every module: no relative, npm, JSR or remote imports", () => {
      // main.ts loads lib/server.ts with a dynamic import; the bundle must carry it inline.
      assert(!/import\(\s*["'`]\.{1,2}\//.test(text), "a relative dynamic import was left");
      assert(
        !/(?:\bfrom|\bimport)\s*\(?\s*["'](?:npm:|j[s]r:|https?:|\.{1,2}\/)/.test(text),
        "an import of an npm, JSR, remote or relative module was left",
      );
      // Server code is in (its log line), and no path of this checkout was baked in.
      assertStringIncludes(text, "shutting down");
      assert(!text.includes(root), `the bundle refers to ${root}`);
    });

    const dir = await Deno.makeTempDir({ prefix: "ghp-bundle-" });
    const denoDir = await Deno.makeTempDir({ prefix: "ghp-deno-dir-" });
    assert(!dir.startsWith(root) && !denoDir.startsWith(root), "temp dir inside the repo");
    const box: Sandbox = { dir, denoDir };
    await Deno.copyFile(`${root}${BUNDLE}`, `${dir}/grpc_health_proxy.js`);
    await Deno.copyFile(`${root}${BUNDLE}`, `${dir}/grpc_health_probe.js`);
    await Deno.copyFile(`${root}${BUNDLE}`, `${dir}/grpc_health_probe`);
    const fixture = await HealthFixture.start();
    const addr = fixture.target;

    try {
      await t.step("probe mode: 0 SERVING, 4 NOT_SERVING", async () => {
        const ok = await runBundle(box, "grpc_health_proxy.js", [`-addr=${addr}`]);
        assertEquals(ok.code, 0, ok.stderr);
        assertMatch(ok.stderr, /^status: SERVING$/m);
        // Nothing was downloaded into the empty cache.
        const npm = [...Deno.readDirSync(denoDir)].find((e) => e.name === "npm");
        if (npm) assertEquals([...Deno.readDirSync(`${denoDir}/npm`)], [], "npm packages fetched");
        fixture.setStatus("", "NOT_SERVING");
        const bad = await runBundle(box, "grpc_health_proxy.js", [`-addr=${addr}`]);
        fixture.setStatus("", "SERVING");
        assertEquals(bad.code, 4, bad.stderr);
        assertStringIncludes(bad.stderr, "NOT_SERVING");
      });

      await t.step(
        "a SERVING probe is answered by the fast path: grpc-js is never evaluated",
        async () => {
          // The single-file bundle inlines grpc-js behind the dynamic import (evaluated on the
          // first call only) and hoists its node: imports to the top (loaded, docs/performance.md):
          // "answered by the fast path" says that import was never called.
          const r = await runBundle(box, "grpc_health_proxy.js", [`-addr=${addr}`, "-v"]);
          assertEquals(r.code, 0, r.stderr);
          assertMatch(r.stderr, /^answered by the fast path/m);
          assert(!/grpc-js/.test(r.stderr), r.stderr);
        },
      );

      await t.step(
        "without any way to resolve modules (--cached-only --no-npm --no-remote)",
        async () => {
          const r = await runBundle(box, "grpc_health_proxy.js", [`-addr=${addr}`], {
            extraFlags: ["--cached-only", "--no-npm", "--no-remote"],
          });
          assertEquals(r.code, 0, r.stderr);
        },
      );

      await t.step("runcli mode: 0 SERVING, 5 NOT_SERVING", async () => {
        const ok = await runBundle(box, "grpc_health_proxy.js", ["-runcli", `-grpcaddr=${addr}`]);
        assertEquals(ok.code, 0, ok.stderr);
        fixture.setStatus("", "NOT_SERVING");
        const bad = await runBundle(box, "grpc_health_proxy.js", ["-runcli", `-grpcaddr=${addr}`]);
        fixture.setStatus("", "SERVING");
        assertEquals(bad.code, 5, bad.stderr);
      });

      await t.step("-version", async () => {
        const r = await runBundle(box, "grpc_health_proxy.js", ["-version"]);
        assertEquals(r.code, 0, r.stderr);
        assertMatch(r.stdout, new RegExp(`^grpc_health_proxy ${denoJson.version} \\(deno `));
      });

      await t.step(
        "named grpc_health_probe(.js): probe mode and exit codes with -grpcaddr",
        async () => {
          for (const name of ["grpc_health_probe.js", "grpc_health_probe"]) {
            const ok = await runBundle(box, name, [`-grpcaddr=${addr}`]);
            assertEquals(ok.code, 0, `${name}: ${ok.stderr}`);
            assertMatch(ok.stderr, /^status: SERVING$/m);
            fixture.setStatus("", "NOT_SERVING");
            // runcli would exit 5 and server mode would not exit: 4 is probe mode's code.
            const bad = await runBundle(box, name, [`-grpcaddr=${addr}`]);
            fixture.setStatus("", "SERVING");
            assertEquals(bad.code, 4, `${name}: ${bad.stderr}`);
          }
        },
      );

      await t.step("server mode: 200 over HTTP, metrics, exit 0 on SIGTERM", async () => {
        const proxy = await watchListening(
          bundleCommand(box, "grpc_health_proxy.js", [
            `-grpcaddr=${addr}`,
            "-http-listen-addr=127.0.0.1:0",
            "-metrics-http-listen-addr=127.0.0.1:0",
          ]).spawn(),
          { listeners: 2, timeoutMs: 60_000 },
        );
        try {
          const [health, metricsUrl] = proxy.urls;
          assert(metricsUrl, `listeners not up: ${proxy.stderr.join("\n")}`);
          const res = await waitForStatus(`${health}/`, 200, 20_000);
          assertEquals((await res.text()).trim(), "SERVING");
          const metrics = await waitForStatus(`${metricsUrl}/metrics`, 200, 20_000);
          assertStringIncludes(await metrics.text(), "grpc_health_check_seconds");
        } finally {
          const out = await stopMain(proxy);
          assertEquals(out.code, 0, out.stderr);
        }
      });

      await t.step("start-up time (printed, not asserted)", async () => {
        const args = [`-addr=${addr}`];
        const runs = 5;
        const time = async (denoDir: string, wrapper?: string[]) => {
          const ms: number[] = [];
          for (let i = 0; i < runs; i++) {
            const r = await runBundle(box, "grpc_health_proxy.js", args, { denoDir, wrapper });
            assertEquals(r.code, 0, r.stderr);
            ms.push(r.ms);
          }
          return median(ms);
        };
        const fresh = await Deno.makeTempDir({ prefix: "ghp-deno-dir-" });
        const cold = (await runBundle(box, "grpc_health_proxy.js", args, { denoDir: fresh })).ms;
        const warm = await time(fresh);
        // A DENO_DIR that cannot be created (its parent is a regular file): no cache at all.
        const file = await Deno.makeTempFile({ prefix: "ghp-not-a-dir-" });
        const missing = await time(`${file}/deno`);
        // A read-only DENO_DIR, populated first (as an image build would, for a read-only root
        // file system). File modes do not stop root, so as root the runs are as "nobody".
        const ro = await Deno.makeTempDir({ prefix: "ghp-deno-dir-ro-" });
        await time(ro);
        let readOnly: string;
        if (Deno.uid() !== 0) {
          await Deno.chmod(ro, 0o555);
          readOnly = `${(await time(ro)).toFixed(0)} ms`;
          await Deno.chmod(ro, 0o755);
        } else if (await hasSetpriv()) {
          // nobody must read the bundle (temp dirs are 0700) but cannot write the cache.
          await Deno.chmod(dir, 0o755);
          await Deno.chmod(ro, 0o755);
          const nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"];
          readOnly = `${(await time(ro, nobody)).toFixed(0)} ms (as nobody)`;
        } else {
          readOnly = "SKIPPED (root, and no setpriv to drop privileges)";
        }
        console.log(
          `bundle probe start-up, wall time per run (median of ${runs}): ` +
            `writable DENO_DIR cold ${cold.toFixed(0)} ms, warm ${warm.toFixed(0)} ms; ` +
            `uncreatable DENO_DIR ${missing.toFixed(0)} ms; read-only DENO_DIR ${readOnly}`,
        );
        for (const d of [fresh, ro, file]) await Deno.remove(d, { recursive: true });
      });
    } finally {
      await fixture.stop();
      await Deno.remove(dir, { recursive: true });
      await Deno.remove(denoDir, { recursive: true });
    }
  },
});
