import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { SERVER_NODE_FLAGS } from "../../server/node-flags.ts";

const root = new URL("../../", import.meta.url);

/** The server's V8 flags are passed on the command line in several places; they must say the same. */
describe("the server's V8 flags", () => {
  it("are those of npm start", () => {
    const pkg = JSON.parse(readFileSync(new URL("package.json", root), "utf8")) as { scripts: { start: string } };
    const command = pkg.scripts.start.split("&&").at(-1)?.trim() ?? "";
    expect(command).toBe(`node ${SERVER_NODE_FLAGS.join(" ")} --import tsx server/main.ts`);
  });

  it("are those of the container image", () => {
    const dockerfile = readFileSync(new URL("infra/Dockerfile", root), "utf8");
    const cmd = dockerfile.split("\n").find((line) => line.startsWith("CMD "));
    expect(JSON.parse(cmd?.slice(4) ?? "null")).toEqual([
      "node",
      ...SERVER_NODE_FLAGS,
      "--import",
      "tsx",
      "server/main.ts",
    ]);
  });

  it("are those of the three-node recipe in the operations guide", () => {
    const ops = readFileSync(new URL("docs/OPERATIONS.md", root), "utf8");
    const starts = ops.split("\n").filter((line) => line.includes("server/main.ts"));
    expect(starts.length).toBeGreaterThan(0);
    for (const line of starts)
      expect(line).toContain(`node ${SERVER_NODE_FLAGS.join(" ")} --import tsx server/main.ts`);
  });
});
