import { assert, assertEquals } from "./assert.ts";
import { root } from "./helpers.ts";
import { generatedFiles, renderGenerated } from "../tools/readme.ts";

/** `deno fmt` of Markdown text, as `deno task readme` leaves it. */
async function formatted(markdown: string): Promise<string> {
  const fmt = new Deno.Command(Deno.execPath(), {
    args: ["fmt", "--ext=md", "-"],
    stdin: "piped",
    stdout: "piped",
  }).spawn();
  const w = fmt.stdin.getWriter();
  await w.write(new TextEncoder().encode(markdown));
  await w.close();
  return new TextDecoder().decode((await fmt.output()).stdout);
}

Deno.test("the generated parts of README.md and docs/ match the code", async () => {
  for (const [file, sections] of Object.entries(generatedFiles)) {
    const text = Deno.readTextFileSync(`${root}${file}`);
    const expected = await formatted(renderGenerated(text, sections));
    assertEquals(text, expected, `${file} is stale: run deno task readme`);
  }
});

Deno.test("README's commands use the pinned Deno version", () => {
  const readme = Deno.readTextFileSync(`${root}README.md`);
  const pinned = Deno.readTextFileSync(`${root}.ci/deno-version`).trim().split("=")[1];
  const versions = [...readme.matchAll(/deno@(\d+\.\d+\.\d+)/g)].map((m) => m[1]);
  assertEquals(versions.length > 0, true);
  for (const v of versions) assertEquals(v, pinned);
});

Deno.test("README is for users: short, the two commands first, depth linked from docs/", () => {
  const readme = Deno.readTextFileSync(`${root}README.md`);
  const bytes = new TextEncoder().encode(readme).length;
  assert(bytes <= 16_000, `README.md is ${bytes} bytes; move depth to docs/`);
  const head = readme.split("\n").slice(0, 40).join("\n");
  assert(/npx -y deno@\S+ task demo/.test(head), "the demo command is not in the first 40 lines");
  assert(/npx -y deno@\S+ task test/.test(head), "the test command is not in the first 40 lines");
  const linked = new Set([...readme.matchAll(/\]\((docs\/[^)#]+)/g)].map((m) => m[1]));
  for (const link of linked) {
    assert(Deno.statSync(`${root}${link}`).isFile, `README links ${link}, which does not exist`);
  }
  for (const doc of Deno.readDirSync(`${root}docs`)) {
    assert(linked.has(`docs/${doc.name}`), `docs/${doc.name} is not linked from README.md`);
  }
});
