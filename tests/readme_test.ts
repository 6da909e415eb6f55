import { assertEquals } from "./assert.ts";
import { root } from "./helpers.ts";
import { renderReadme } from "../tools/readme.ts";

Deno.test("README's flag reference and status table are generated from the code", async () => {
  const readme = Deno.readTextFileSync(`${root}README.md`);
  const fmt = new Deno.Command(Deno.execPath(), {
    args: ["fmt", "--ext=md", "-"],
    stdin: "piped",
    stdout: "piped",
  }).spawn();
  const w = fmt.stdin.getWriter();
  await w.write(new TextEncoder().encode(renderReadme(readme)));
  await w.close();
  const expected = new TextDecoder().decode((await fmt.output()).stdout);
  assertEquals(readme, expected, "README.md is stale: run deno task readme");
});

Deno.test("README's commands use the pinned Deno version", () => {
  const readme = Deno.readTextFileSync(`${root}README.md`);
  const pinned = Deno.readTextFileSync(`${root}.ci/deno-version`).trim().split("=")[1];
  const versions = [...readme.matchAll(/deno@(\d+\.\d+\.\d+)/g)].map((m) => m[1]);
  assertEquals(versions.length > 0, true);
  for (const v of versions) assertEquals(v, pinned);
});
