/**
 * The examples stay true to the program: every YAML file parses; every grpc_health_proxy /
 * grpc_health_probe command line in the Kubernetes, Docker and Prometheus examples is made of
 * flags of {@link flagTable} and passes {@link parseFlags} (so renaming a flag breaks this test);
 * probes, health checks and scrape targets point at the ports and paths those flags configure;
 * listeners that other pods reach are not on loopback; and the sidecar's command line, run for
 * real against `examples/echo_server.ts`, answers its probes. Also runs `deno task demo --once`.
 *
 * @module
 */

import https from "node:https";
import { parseAllDocuments } from "yaml";
import { assert, assertEquals, assertMatch, assertStringIncludes } from "./assert.ts";
import { root, runMain } from "./helpers.ts";
import { spawnMain, stopMain } from "./fixture/main_process.ts";
import { type Config, flagTable, parseFlags } from "../lib/flags.ts";
import { startEchoServer } from "../examples/echo_server.ts";

// ---------------------------------------------------------------------------------------------
// Loading

// deno-lint-ignore no-explicit-any
type Doc = any;

/** Every file under `examples/` ending in `ext`, relative to the repository root. */
function exampleFiles(ext: RegExp, dir = "examples"): string[] {
  const out: string[] = [];
  for (const e of Deno.readDirSync(`${root}${dir}`)) {
    const rel = `${dir}/${e.name}`;
    if (e.isDirectory) out.push(...exampleFiles(ext, rel));
    else if (ext.test(e.name)) out.push(rel);
  }
  return out.sort();
}

/** The YAML documents of a file; fails on any parse error or warning. */
function loadYaml(rel: string): Doc[] {
  const docs = parseAllDocuments(Deno.readTextFileSync(`${root}${rel}`));
  const list = Array.isArray(docs) ? docs : [docs];
  for (const d of list) {
    assertEquals(d.errors.map(String), [], `${rel}: YAML errors`);
    assertEquals(d.warnings.map(String), [], `${rel}: YAML warnings`);
  }
  return list.map((d) => d.toJS()).filter((d) => d !== null);
}

const yamlFiles = exampleFiles(/\.ya?ml$/);
const k8sDocs: { file: string; doc: Doc }[] = yamlFiles
  .filter((f) => f.startsWith("examples/k8s/"))
  .flatMap((file) => loadYaml(file).map((doc) => ({ file, doc })));
const pinnedDeno = /^DENO_VERSION=(.+)$/m.exec(Deno.readTextFileSync(`${root}.ci/deno-version`))![1]
  .trim();

// ---------------------------------------------------------------------------------------------
// Command lines

const flagNames = new Set(flagTable.flatMap((f) => f.names));

/** Parses a command line of the program as `invokedAs`; fails naming the file and flag. */
function parseProgramArgs(where: string, args: string[], invokedAs: string): Config {
  for (const arg of args) {
    if (arg === "--") break;
    const m = /^--?([^=]+)/.exec(arg);
    assert(m, `${where}: ${arg} is not a flag (values go as -flag=value)`);
    assert(flagNames.has(m[1]), `${where}: -${m[1]} is not a flag of lib/flags.ts`);
  }
  const parsed = parseFlags(args, invokedAs);
  assert(parsed.ok, `${where}: ${parsed.ok ? "" : parsed.message}`);
  return parsed.config;
}

/** The host and port of a listen address (`host:port`, `:port`, `[v6]:port`). */
function splitAddr(addr: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]*)\]|([^:]*)):(\d+)$/.exec(addr);
  assert(m, `not host:port: ${addr}`);
  return { host: m[1] ?? m[2], port: Number(m[3]) };
}

function isLoopback(host: string): boolean {
  return host === "localhost" || /^127\./.test(host) || host === "::1";
}

/** A Kubernetes container that runs the program, with its parsed flags. */
interface ProxyContainer {
  where: string;
  container: Doc;
  config: Config;
}

/** The pod templates of the workloads in the Kubernetes examples. */
function podTemplates(): { where: string; labels: Record<string, string>; spec: Doc }[] {
  return k8sDocs
    .filter(({ doc }) => doc?.spec?.template?.spec?.containers)
    .map(({ file, doc }) => ({
      where: `${file} ${doc.kind}/${doc.metadata.name}`,
      labels: doc.spec.template.metadata?.labels ?? {},
      spec: doc.spec.template.spec,
    }));
}

/** Containers running this repository's image: flags are their args (ENTRYPOINT is the binary). */
function proxyContainers(spec: Doc, where: string): ProxyContainer[] {
  return (spec.containers as Doc[])
    .filter((c) => /grpc_health_proxy/.test(c.image ?? ""))
    .map((c) => {
      const command: string[] = c.command ?? ["/grpc_health_proxy"];
      const args = [...command.slice(1), ...(c.args ?? [])];
      const w = `${where} container ${c.name}`;
      return { where: w, container: c, config: parseProgramArgs(w, args, command[0]) };
    });
}

/** A probe's or check's time budget must cover one check: connect wait plus the RPC. */
function assertCoversCheck(where: string, timeoutSeconds: number, config: Config): void {
  const needed = config.connectTimeoutMs + config.rpcTimeoutMs;
  assert(
    timeoutSeconds * 1000 > needed,
    `${where}: timeout ${timeoutSeconds}s does not exceed -connect-timeout + -rpc-timeout ` +
      `(${needed} ms): the prober would give up before the proxy answers`,
  );
}

const usesTls = (c: Config) => c.httpsSelfSigned || c.httpsListenCert !== "";

// ---------------------------------------------------------------------------------------------
// Tests

Deno.test("examples: every YAML file parses", () => {
  assert(yamlFiles.length >= 4, `too few YAML examples: ${yamlFiles.join(", ")}`);
  for (const f of yamlFiles) assert(loadYaml(f).length > 0, `${f} is empty`);
  for (const { file, doc } of k8sDocs) {
    assert(doc.apiVersion && doc.kind && doc.metadata?.name, `${file}: not a Kubernetes object`);
  }
});

Deno.test("examples/k8s: proxy containers parse, listen off loopback, declare their ports", () => {
  const pods = podTemplates();
  const proxies = pods.flatMap((p) => proxyContainers(p.spec, p.where));
  assert(proxies.length > 0, "no grpc_health_proxy container in the Kubernetes examples");
  for (const { where, container, config } of proxies) {
    assertEquals(config.mode, "server", `${where}: a sidecar runs in server mode`);
    const health = splitAddr(config.httpListenAddr);
    assert(
      !isLoopback(health.host),
      `${where}: -http-listen-addr=${config.httpListenAddr} is loopback: the kubelet and load ` +
        "balancers connect to the pod IP (use 0.0.0.0:PORT)",
    );
    const declared = (container.ports ?? []).map((p: Doc) => p.containerPort);
    assert(declared.includes(health.port), `${where}: containerPort ${health.port} not declared`);
    if (config.metricsHttpListenAddr !== "") {
      const metrics = splitAddr(config.metricsHttpListenAddr);
      assert(
        !isLoopback(metrics.host),
        `${where}: -metrics-http-listen-addr=${config.metricsHttpListenAddr} is loopback: ` +
          "Prometheus scrapes from another pod (use 0.0.0.0:PORT, or disable it with an empty value)",
      );
      assert(
        declared.includes(metrics.port),
        `${where}: containerPort ${metrics.port} not declared`,
      );
    }
  }
});

Deno.test("examples/k8s: httpGet probes hit the proxy's port, paths and scheme", () => {
  let probes = 0;
  for (const pod of podTemplates()) {
    const proxies = proxyContainers(pod.spec, pod.where);
    // Named ports resolve against every container of the pod.
    const named = new Map<string, number>();
    for (const c of pod.spec.containers) {
      for (const p of c.ports ?? []) if (p.name) named.set(p.name, p.containerPort);
    }
    for (const c of pod.spec.containers as Doc[]) {
      for (const kind of ["readinessProbe", "livenessProbe", "startupProbe"]) {
        const get = c[kind]?.httpGet;
        if (!get) continue;
        probes++;
        const where = `${pod.where} container ${c.name} ${kind}`;
        const port = typeof get.port === "string" ? named.get(get.port) : get.port;
        const proxy = proxies.find((p) => splitAddr(p.config.httpListenAddr).port === port);
        assert(proxy, `${where}: port ${get.port} is no proxy's -http-listen-addr port`);
        const { config } = proxy;
        const wanted = kind === "livenessProbe" && config.httpLivenessPath !== ""
          ? config.httpLivenessPath
          : config.httpListenPath;
        assertEquals(get.path, wanted, `${where}: path is not the proxy's ${kind} path`);
        assertEquals(get.scheme ?? "HTTP", usesTls(config) ? "HTTPS" : "HTTP", `${where}: scheme`);
        assertCoversCheck(where, c[kind].timeoutSeconds ?? 1, config);
      }
    }
  }
  assert(probes >= 2, "expected readiness and liveness httpGet probes");
});

Deno.test("examples/k8s: exec probes are grpc_health_probe command lines that reach the app", () => {
  let probes = 0;
  for (const pod of podTemplates()) {
    for (const c of pod.spec.containers as Doc[]) {
      for (const kind of ["readinessProbe", "livenessProbe", "startupProbe"]) {
        const command: string[] | undefined = c[kind]?.exec?.command;
        if (!command) continue;
        probes++;
        const where = `${pod.where} container ${c.name} ${kind}`;
        assertEquals(command[0], "/bin/grpc_health_probe", `${where}: the image's probe path`);
        const config = parseProgramArgs(where, command.slice(1), command[0]);
        assertEquals(config.mode, "probe", where);
        const port = Number(/:(\d+)$/.exec(config.addr)?.[1]);
        const declared = (c.ports ?? []).map((p: Doc) => p.containerPort);
        assert(declared.includes(port), `${where}: -addr port ${port} is not a containerPort`);
        assertCoversCheck(where, c[kind].timeoutSeconds ?? 1, config);
      }
    }
  }
  assert(probes > 0, "no exec probe in the Kubernetes examples");
});

Deno.test("examples/k8s: GKE BackendConfig health check = the sidecar's port and path", () => {
  const configs = k8sDocs.filter(({ doc }) => doc.kind === "BackendConfig");
  assert(configs.length > 0, "no BackendConfig");
  for (const { file, doc } of configs) {
    const where = `${file} BackendConfig/${doc.metadata.name}`;
    const hc = doc.spec.healthCheck;
    assertEquals(hc.type, "HTTP2", `${where}: type`);
    // The Service that uses it, and the pods that Service selects.
    const service = k8sDocs.find(({ doc: d }) =>
      d.kind === "Service" &&
      JSON.parse(d.metadata.annotations?.["cloud.google.com/backend-config"] ?? "{}")
          .default === doc.metadata.name
    );
    assert(service, `${where}: no Service refers to it`);
    const selector: Record<string, string> = service.doc.spec.selector;
    const pod = podTemplates().find((p) =>
      Object.entries(selector).every(([k, v]) => p.labels[k] === v)
    );
    assert(pod, `${where}: the Service selects no pod of the examples`);
    const [proxy] = proxyContainers(pod.spec, pod.where);
    assert(proxy, `${where}: the selected pods have no grpc_health_proxy sidecar`);
    assertEquals(hc.port, splitAddr(proxy.config.httpListenAddr).port, `${where}: port`);
    assertEquals(hc.requestPath, proxy.config.httpListenPath, `${where}: requestPath`);
    assert(usesTls(proxy.config), `${where}: GKE HTTP2 health checks need the proxy on HTTPS`);
    assertCoversCheck(where, hc.timeoutSec ?? 5, proxy.config);
  }
});

Deno.test("examples/prometheus: scrape targets are the metrics listeners", () => {
  const [prom] = loadYaml("examples/prometheus/prometheus.yml");
  const defaults = parseProgramArgs("defaults", ["-grpcaddr=localhost:50051"], "grpc_health_proxy");
  const pods = podTemplates();
  let checked = 0;
  for (const job of prom.scrape_configs as Doc[]) {
    const where = `prometheus.yml job ${job.job_name}`;
    const path = job.metrics_path ?? "/metrics";
    for (const sc of job.static_configs ?? []) {
      // A local proxy with its default flags.
      for (const target of sc.targets) {
        assertEquals(target, defaults.metricsHttpListenAddr, `${where}: target`);
        assertEquals(path, defaults.metricsHttpPath, `${where}: metrics_path`);
        checked++;
      }
    }
    for (const rule of job.relabel_configs ?? []) {
      const labels: string[] = rule.source_labels ?? [];
      if (rule.action !== "keep" || !labels.includes("__meta_kubernetes_pod_container_port_name")) {
        continue;
      }
      // `keep` on container name;port name: that container's port must be its metrics port.
      const [name, portName] = String(rule.regex).split(";");
      const hits = pods.flatMap((p) => proxyContainers(p.spec, p.where))
        .filter((p) => p.container.name === name);
      assert(hits.length > 0, `${where}: no proxy container named ${name}`);
      for (const { where: w, container, config } of hits) {
        const port = (container.ports ?? []).find((p: Doc) => p.name === portName);
        assert(port, `${w}: no port named ${portName}`);
        assertEquals(
          port.containerPort,
          splitAddr(config.metricsHttpListenAddr).port,
          `${where}: port ${portName} of ${w} is not -metrics-http-listen-addr's`,
        );
        assertEquals(path, config.metricsHttpPath, `${where}: metrics_path vs ${w}`);
        checked++;
      }
    }
  }
  assert(checked >= 2, "expected a static and a Kubernetes scrape target");
});

Deno.test("examples/docker: HEALTHCHECK runs grpc_health_probe against the exposed port", () => {
  const text = Deno.readTextFileSync(`${root}examples/docker/Dockerfile.app`);
  const m = /^HEALTHCHECK\s+(.*?)\s*CMD\s+(\[.*\])\s*$/m.exec(text);
  assert(m, "no exec-form HEALTHCHECK CMD [...] line");
  const command: string[] = JSON.parse(m[2]);
  assertEquals(command[0], "/bin/grpc_health_probe");
  const config = parseProgramArgs("Dockerfile.app HEALTHCHECK", command.slice(1), command[0]);
  assertEquals(config.mode, "probe");
  const exposed = /^EXPOSE\s+(.*)$/m.exec(text)![1].split(/\s+/).map(Number);
  assert(exposed.includes(Number(/:(\d+)$/.exec(config.addr)![1])), "-addr port is not EXPOSEd");
  const timeout = /--timeout=(\d+)s/.exec(m[1]);
  assertCoversCheck("Dockerfile.app HEALTHCHECK", timeout ? Number(timeout[1]) : 30, config);
  assertMatch(text, /^COPY --from=\S+ \/bin\/grpc_health_probe \/bin\/grpc_health_probe$/m);
  assertMatch(
    text,
    new RegExp(`^FROM denoland/deno:debian-${pinnedDeno.replace(/\./g, "\\.")}$`, "m"),
  );
});

// ---------------------------------------------------------------------------------------------
// The examples for real

/** GET over HTTP or HTTPS without verifying the certificate (as the kubelet does). */
function insecureGet(url: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const get = url.startsWith("https:") ? https.get : null;
    const done = (res: import("node:http").IncomingMessage) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (c) => (body += c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body: body.trim() }));
    };
    if (get) {
      get(url, { rejectUnauthorized: false, timeout: 5000 }, done).on("error", reject);
    } else {
      fetch(url, { signal: AbortSignal.timeout(5000) }).then(async (r) =>
        resolve({ status: r.status, body: (await r.text()).trim() })
      ).catch(reject);
    }
  });
}

async function waitAnswering(url: string, child: Deno.ChildProcess, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms;
  let exited = false;
  child.status.then(() => (exited = true));
  let last = "";
  while (Date.now() < deadline && !exited) {
    try {
      await insecureGet(url);
      return;
    } catch (err) {
      last = (err as Error).message;
      if (/wrong version number/.test(last)) {
        throw new Error(
          `${url}: the listener speaks plain HTTP although the flags ask for HTTPS ` +
            `(is -https-self-signed implemented in server mode?): ${last}`,
        );
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  throw new Error(`${url} never answered${exited ? " (the proxy exited)" : ""}: ${last}`);
}

Deno.test({
  name: "examples/k8s: the sidecar's command line answers its probes (echo_server upstream)",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const pod = podTemplates().find((p) => proxyContainers(p.spec, p.where).length > 0)!;
    const [proxy] = proxyContainers(pod.spec, pod.where);
    const echo = await startEchoServer({ port: 0 });
    // The manifest's flags, with the addresses moved to this machine's loopback (port 0: the
    // listening lines say which ports).
    const args = (proxy.container.args as string[]).map((a) =>
      a.replace(/^(-grpcaddr=).*/, `$1${echo.target}`)
        .replace(/^(-http-listen-addr=).*/, "$1127.0.0.1:0")
        .replace(/^(-metrics-http-listen-addr=).*/, "$1127.0.0.1:0")
    );
    const child = await spawnMain(args, { listeners: 2, timeoutMs: 30_000 });
    const [base, metricsBase] = child.urls;
    const { httpListenPath: ready, httpLivenessPath: live, metricsHttpPath } = proxy.config;
    try {
      assert(metricsBase, `listeners not up: ${child.stderr.join("\n")}`);
      assertEquals(base.startsWith("https:"), usesTls(proxy.config), base);
      await waitAnswering(`${base}${ready}`, child.child);
      assertEquals(await insecureGet(`${base}${ready}`), {
        status: 200,
        body: "echo.v1.Echo SERVING",
      });
      assertEquals((await insecureGet(`${base}${live}`)).status, 200);
      const metrics = await insecureGet(`${metricsBase}${metricsHttpPath}`);
      assertEquals(metrics.status, 200);
      assertStringIncludes(metrics.body, "grpc_health_check_service_requests");
      echo.setStatus("NOT_SERVING");
      // Readiness fails, liveness holds: the app answers, it is just not ready.
      assertEquals((await insecureGet(`${base}${ready}`)).status, 503);
      assertEquals((await insecureGet(`${base}${live}`)).status, 200);
    } finally {
      const out = await stopMain(child);
      await echo.stop();
      assertEquals(out.code, 0, out.stderr);
    }
  },
});

Deno.test({
  name: "examples: the exec probe's command line against echo_server (probe exit codes)",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const pod = podTemplates().find((p) =>
      p.spec.containers.some((c: Doc) => c.readinessProbe?.exec)
    )!;
    const command: string[] = pod.spec.containers.find((c: Doc) => c.readinessProbe?.exec)
      .readinessProbe.exec.command;
    const echo = await startEchoServer({ port: 0 });
    try {
      const args = command.slice(1).map((a) => a.replace(/:\d+$/, `:${echo.port}`));
      const ok = await runMain(args);
      assertEquals(ok.code, 0, ok.stderr);
      echo.setStatus("NOT_SERVING");
      const bad = await runMain(args);
      assertEquals(bad.code, 4, bad.stderr);
    } finally {
      await echo.stop();
    }
  },
});

Deno.test({
  name: "examples: Health/List of echo_server through -list and the list path",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const echo = await startEchoServer({ port: 0 });
    try {
      // The README's commands, with this machine's port.
      const listed = '"" SERVING\necho.v1.Echo SERVING\n';
      const ok = await runMain([`-addr=localhost:${echo.port}`, "-list"]);
      assertEquals([ok.code, ok.stdout], [0, listed], ok.stderr);
      const child = await spawnMain([
        `-grpcaddr=localhost:${echo.port}`,
        "-http-listen-addr=127.0.0.1:0",
        "-metrics-http-listen-addr=",
        "-http-list-path=/services",
      ]);
      try {
        const res = await fetch(`${child.urls[0]}/services`);
        assertEquals([res.status, await res.text()], [200, listed]);
        echo.setStatus("NOT_SERVING");
        const bad = await fetch(`${child.urls[0]}/services`);
        assertEquals(bad.status, 503);
        await bad.body?.cancel();
      } finally {
        assertEquals((await stopMain(child)).code, 0);
      }
      const down = await runMain([`-addr=localhost:${echo.port}`, "-list"]);
      assertEquals(down.code, 4, down.stderr);
    } finally {
      await echo.stop();
    }
  },
});

Deno.test({
  name: "deno task demo --once: shows 200 and 503, exits 0",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["task", "demo", "--once"],
      cwd: root,
      env: { NO_COLOR: "1" },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
    const dec = new TextDecoder();
    const text = dec.decode(out.stdout);
    assertEquals(out.code, 0, text + dec.decode(out.stderr));
    assertMatch(text, /-> 200 SERVING/);
    assertMatch(text, /-> 503 NOT_SERVING/);
    assertMatch(text, /-> 200 "" SERVING \| echo\.v1\.Echo SERVING\n/);
    assertMatch(text, /list {3}-> 503 "" NOT_SERVING \| echo\.v1\.Echo NOT_SERVING\n/);
    assertMatch(text, /curl -i --cacert \S*ca\.pem --cert \S*client\.pem --key \S*client-key\.pem/);
    assertMatch(text, /stopped: upstream exit 0/);
  },
});
