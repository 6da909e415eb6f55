/**
 * The Dockerfile and `.dockerignore`, checked by structure (there is no Docker engine here, and
 * hadolint is neither in Debian nor usable from npm, so it runs only where it is installed):
 * the stages and their pinned versions, the compile permissions, the paths and names the
 * image promises, the build context; and that Deno's runtime needs no shared library beyond
 * what `gcr.io/distroless/cc-debian12` ships.
 *
 * @module
 */

import denoJson from "../deno.json" with { type: "json" };
import { assert, assertEquals, assertMatch } from "./assert.ts";
import { programPermissions, root } from "./helpers.ts";
import { flagTable } from "../lib/flags.ts";

/** One Dockerfile instruction, continuation lines joined. */
interface Instruction {
  keyword: string;
  args: string;
  stage: number;
}

/** Splits a Dockerfile into instructions (comments dropped, `\` continuations joined). */
function parseDockerfile(text: string): Instruction[] {
  const out: Instruction[] = [];
  let stage = -1;
  let pending = "";
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (line.startsWith("#") || (line === "" && pending === "")) continue;
    pending += (pending ? " " : "") + line.replace(/\\$/, "").trim();
    if (line.endsWith("\\")) continue;
    const m = /^(\w+)\s+(.*)$/.exec(pending);
    pending = "";
    if (!m) continue;
    const keyword = m[1].toUpperCase();
    if (keyword === "FROM") stage++;
    out.push({ keyword, args: m[2].trim(), stage });
  }
  return out;
}

/** Go `filepath.Match`-like pattern of `.dockerignore` as a regular expression. */
function ignoreRegex(pattern: string): RegExp {
  const p = pattern.replace(/^\/+|\/+$/g, "");
  let re = "";
  for (let i = 0; i < p.length; i++) {
    const c = p[i];
    if (c === "*" && p[i + 1] === "*") {
      re += ".*";
      i++;
      if (p[i + 1] === "/") i++;
    } else if (c === "*") re += "[^/]*";
    else if (c === "?") re += "[^/]";
    else re += c.replace(/[.+^${}()|[\]\\]/g, "\\$&");
  }
  // A pattern that names a directory covers everything below it.
  return new RegExp(`^${re}(/.*)?$`);
}

/** Whether `.dockerignore` keeps `path` (relative to the context) in the build context. */
function inContext(rules: string[], path: string): boolean {
  let included = true;
  for (const rule of rules) {
    const negated = rule.startsWith("!");
    if (ignoreRegex(negated ? rule.slice(1) : rule).test(path)) included = negated;
  }
  return included;
}

const dockerfile = Deno.readTextFileSync(`${root}Dockerfile`);
const instructions = parseDockerfile(dockerfile);
const stage = (n: number) => instructions.filter((i) => i.stage === n);
const pinnedDeno = /^DENO_VERSION=(.+)$/m.exec(Deno.readTextFileSync(`${root}.ci/deno-version`))![1]
  .trim();
const tasks = denoJson.tasks as Record<string, string>;

Deno.test("Dockerfile: two stages, the pinned Deno and the distroless runtime", () => {
  const froms = instructions.filter((i) => i.keyword === "FROM").map((i) => i.args);
  assertEquals(froms, [
    `denoland/deno:debian-${pinnedDeno} AS build`,
    "gcr.io/distroless/cc-debian12:nonroot",
  ]);
});

Deno.test("Dockerfile: the build stage compiles with explicit permissions, never -A", () => {
  const runs = stage(0).filter((i) => i.keyword === "RUN").map((i) => i.args).join(" && ");
  // Either `deno task compile` (then the task is what runs) or a deno compile command.
  const compile = runs.includes("deno task compile")
    ? tasks.compile
    : /deno compile [^&;]*/.exec(runs)?.[0];
  assert(compile, "the build stage does not run deno compile");
  assert(compile.startsWith("deno compile "), `compile is not deno compile: ${compile}`);
  const words = compile.split(/\s+/);
  const allowFlags = words.filter((w) => /^--allow-|^-A$|^--allow-all$/.test(w));
  assertEquals(allowFlags.sort(), [...programPermissions].sort());
  assert(!words.some((w) => w.startsWith("--include")), "--include is not needed");
  assert(words.includes("--output=dist/grpc_health_proxy"), "output is dist/grpc_health_proxy");
  assertEquals(words.at(-1), "main.ts");
});

Deno.test("the V8 flags of `deno task start` are those of the shebang and the binary", () => {
  const v8 = (command: string) => command.split(/\s+/).filter((w) => w.startsWith("--v8-flags"));
  const shebang = Deno.readTextFileSync(`${root}main.ts`).split("\n")[0];
  assertEquals(v8(tasks.start), [
    "--v8-flags=--max-semi-space-size=1,--no-concurrent-recompilation,--heap-growing-percent=30",
  ], "README, Memory");
  assertEquals(v8(tasks.compile), v8(tasks.start));
  assertEquals(v8(shebang), v8(tasks.start));
});

Deno.test("deno.json: no task runs with -A", () => {
  for (const [name, command] of Object.entries(tasks)) {
    assert(!/(^|\s)(-A|--allow-all)(\s|$)/.test(command), `task ${name} uses -A: ${command}`);
  }
});

Deno.test("Dockerfile: one binary at /grpc_health_proxy, /bin/grpc_health_probe a symlink to it", () => {
  // The build stage lays out /out: the binary once, and the link (distroless has no shell).
  const runs = stage(0).filter((i) => i.keyword === "RUN").map((i) => i.args).join("\n");
  assertMatch(runs, /cp dist\/grpc_health_proxy \/out\/grpc_health_proxy/);
  assertMatch(runs, /ln -s \.\.\/grpc_health_proxy \/out\/bin\/grpc_health_probe/);
  assertEquals((runs.match(/\bcp\b/g) ?? []).length, 1, "the binary is copied once");
  // The image takes that layout as a directory copy, which keeps the symlink.
  const copies = stage(1).filter((i) => i.keyword === "COPY").map((i) => i.args);
  assertEquals(copies, ["--from=build /out/ /"]);
  const final = stage(1);
  assertEquals(final.filter((i) => i.keyword === "USER").at(-1)?.args, "nonroot");
  const entrypoints = final.filter((i) => i.keyword === "ENTRYPOINT");
  assertEquals(entrypoints.length, 1);
  // Exec form (JSON array): no shell in the image to run the shell form.
  assertEquals(JSON.parse(entrypoints[0].args), ["/grpc_health_proxy"]);
  assertEquals(final.filter((i) => i.keyword === "CMD"), [], "no CMD: flags come from the user");
});

Deno.test("Dockerfile: EXPOSE is the default health and metrics ports", () => {
  const portOf = (name: string) =>
    String(flagTable.find((f) => f.names.includes(name))!.default).split(":").at(-1);
  const exposed = stage(1).filter((i) => i.keyword === "EXPOSE").flatMap((i) =>
    i.args.split(/\s+/)
  );
  assertEquals(
    exposed.sort(),
    [portOf("http-listen-addr"), portOf("metrics-http-listen-addr")].sort(),
  );
});

Deno.test(".dockerignore: the build context holds what the build copies and nothing else", () => {
  const rules = Deno.readTextFileSync(`${root}.dockerignore`).split("\n").map((l) => l.trim())
    .filter((l) => l !== "" && !l.startsWith("#"));
  const sources = stage(0).filter((i) => i.keyword === "COPY" && !i.args.startsWith("--from"))
    .flatMap((i) => i.args.split(/\s+/).slice(0, -1));
  const files: string[] = [];
  const walk = (rel: string) => {
    const info = Deno.statSync(`${root}${rel}`);
    if (!info.isDirectory) return files.push(rel);
    for (const e of Deno.readDirSync(`${root}${rel}`)) walk(`${rel.replace(/\/$/, "")}/${e.name}`);
  };
  for (const s of sources) walk(s);
  for (const f of files.filter((f) => !f.endsWith("_test.ts"))) {
    assert(inContext(rules, f), `${f} is copied by the Dockerfile but excluded by .dockerignore`);
  }
  for (
    const f of [
      ".git/HEAD",
      "dist/grpc_health_proxy",
      "certs/server-key.pem",
      "tests/helpers.ts",
      "README.md",
      "node_modules/x",
      "lib/flags_test.ts",
    ]
  ) {
    assert(!inContext(rules, f), `${f} should not be in the build context`);
  }
});

Deno.test("Dockerfile: hadolint", async () => {
  let out: Deno.CommandOutput;
  try {
    out = await new Deno.Command("hadolint", { args: [`${root}Dockerfile`] }).output();
  } catch {
    console.log(
      "SKIPPED (hadolint not installed: Debian has no package and npm's `hadolint` only " +
        "downloads the binary from GitHub; the structural tests above still ran)",
    );
    return;
  }
  const dec = new TextDecoder();
  assertEquals(out.code, 0, dec.decode(out.stdout) + dec.decode(out.stderr));
});

/** What `gcr.io/distroless/cc-debian12` ships: glibc, libgcc_s; vdso is the kernel's. */
const DISTROLESS_CC_LIBS = new Set([
  "libc.so.6",
  "libm.so.6",
  "libdl.so.2",
  "libpthread.so.0",
  "librt.so.1",
  "ld-linux-x86-64.so.2",
  "ld-linux-aarch64.so.1",
  "libgcc_s.so.1",
  "linux-vdso.so.1",
]);

/** The shared libraries `ldd` says `binary` needs, by name ("not found" ones included). */
async function sharedLibraries(binary: string): Promise<string[] | undefined> {
  let out: Deno.CommandOutput;
  try {
    out = await new Deno.Command("ldd", { args: [binary] }).output();
  } catch {
    return undefined;
  }
  const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  if (/not a dynamic executable|statically linked/.test(text)) return [];
  return text.split("\n").map((l) => l.trim()).filter((l) => l !== "").map((l) => {
    const name = l.split(/\s+/)[0];
    return name.split("/").at(-1)!;
  });
}

Deno.test("Deno's runtime links only against what distroless/cc-debian12 ships", async () => {
  // `deno compile` binaries are Deno's runtime (denort) with the program appended: the same
  // shared-library needs as the deno binary. Check the compiled binary too when one was built.
  const binaries = [Deno.execPath()];
  try {
    Deno.statSync(`${root}dist/grpc_health_proxy`);
    binaries.push(`${root}dist/grpc_health_proxy`);
  } catch {
    // not built here (deno compile needs internet for denort)
  }
  for (const binary of binaries) {
    const libs = await sharedLibraries(binary);
    if (libs === undefined) {
      console.log("SKIPPED (ldd not installed)");
      return;
    }
    const extra = libs.filter((l) => !DISTROLESS_CC_LIBS.has(l));
    assertEquals(extra, [], `${binary} needs libraries distroless/cc-debian12 lacks`);
    console.log(`${binary}: ${libs.join(", ") || "static"}`);
  }
});

Deno.test("docker build (opt-in: GHP_DOCKER_TEST=1 and a Docker engine)", async () => {
  const engine = await new Deno.Command("docker", {
    args: ["info"],
    stdout: "null",
    stderr: "null",
  })
    .output().then((o) => o.success, () => false);
  if (!engine || Deno.env.get("GHP_DOCKER_TEST") !== "1") {
    console.log(
      `SKIPPED (${engine ? "set GHP_DOCKER_TEST=1 to build" : "no Docker engine"}; ` +
        "the build also needs internet once for deno compile's runtime)",
    );
    return;
  }
  const run = async (args: string[]) => {
    const out = await new Deno.Command("docker", { args, cwd: root }).output();
    const dec = new TextDecoder();
    return { code: out.code, text: dec.decode(out.stdout) + dec.decode(out.stderr) };
  };
  const tag = "grpc_health_proxy:test";
  const build = await run(["build", "-t", tag, "."]);
  assertEquals(build.code, 0, build.text);
  const version = await run(["run", "--rm", tag, "-version"]);
  assertEquals(version.code, 0, version.text);
  // The copy at /bin/grpc_health_probe is probe mode: invalid arguments exit 1 there, 255 else.
  const probe = await run(["run", "--rm", "--entrypoint", "/bin/grpc_health_probe", tag]);
  assertEquals(probe.code, 1, probe.text);
});
