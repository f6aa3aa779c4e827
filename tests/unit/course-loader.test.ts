import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { parse, stringify } from "yaml";
import { CourseError, loadCourse } from "../../server/tutor/course.ts";

const REAL = resolve(import.meta.dirname, "../../content/lessons");
const dirs: string[] = [];
afterEach(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

/** A course made of copies of real lessons, each changed by `edit` (per language) before it is written. */
async function courseWith(
  files: Record<string, (lesson: Record<string, unknown>) => Record<string, unknown> | string>,
): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "dp-course-"));
  dirs.push(dir);
  await mkdir(join(dir, "lessons"));
  for (const [name, edit] of Object.entries(files)) {
    const source = name.replace(/^x-/, "");
    const lesson = parse(await readFile(join(REAL, source), "utf8")) as Record<string, unknown>;
    const out = edit(lesson);
    await writeFile(join(dir, "lessons", name.replace(/^x-/, "")), typeof out === "string" ? out : stringify(out));
  }
  return dir;
}

async function problemsOf(dir: string): Promise<string[]> {
  try {
    await loadCourse(dir);
  } catch (err) {
    if (err instanceof CourseError) return err.problems;
    throw err;
  }
  return [];
}

const same = (l: Record<string, unknown>) => l;
/** without links to lessons that a small test course lacks */
const alone = (l: Record<string, unknown>) => ({ ...l, related: [] });

describe("loading the course", () => {
  it("accepts a lesson present in both languages", async () => {
    const dir = await courseWith({ "04-strings.en.yaml": alone, "04-strings.fr.yaml": alone });
    const course = await loadCourse(dir);
    expect(course.lessons.en.map((l) => l.id)).toEqual(["strings"]);
    expect(course.byId.get("strings")?.fr.language).toBe("fr");
  });

  it("lists every problem at once: schema, file name, a missing language, a differing exercise or quiz", async () => {
    const dir = await courseWith({
      "04-strings.en.yaml": same,
      // a quiz answer that points at no choice
      "04-strings.fr.yaml": (l) => ({
        ...l,
        quiz: (l.quiz as Record<string, unknown>[]).map((q, i) => (i === 0 ? { ...q, answer: 9 } : q)),
      }),
      "05-conditions.en.yaml": same,
      // same lesson, other hint count: the two languages no longer match
      "05-conditions.fr.yaml": (l) => ({
        ...l,
        exercises: (l.exercises as Record<string, unknown>[]).map((e) => ({
          ...e,
          hints: (e.hints as string[]).slice(0, 2),
        })),
      }),
      "06-loops.en.yaml": same,
      "x-07-functions.en.yaml": (l) => ({ ...l, order: 8 }),
      "09-lists.en.yaml": () => "id: [unterminated",
    });
    await writeFile(join(dir, "lessons", "README.yaml"), "a: 1\n");
    const problems = (await problemsOf(dir)).join("\n");
    expect(problems).toContain("04-strings.fr.yaml: quiz.0.answer");
    expect(problems).toMatch(/conditions: exercises \(ids and hint counts\) differ/);
    expect(problems).toContain("loops: missing in fr");
    expect(problems).toContain("07-functions.en.yaml: order, id and language inside must match the file name");
    expect(problems).toContain("09-lists.en.yaml: not valid YAML");
    expect(problems).toContain("README.yaml: name it <order>-<id>.<en|fr>.yaml");
  });

  it("refuses code indented with tabs and links to lessons that do not exist", async () => {
    const dir = await courseWith({
      "04-strings.en.yaml": (l) => ({ ...l, related: ["no-such-lesson"] }),
      "04-strings.fr.yaml": (l) => ({
        ...l,
        related: ["no-such-lesson"],
        examples: [{ title: "t", code: "if True:\n\tprint(1)\n", explanation: "e" }],
      }),
    });
    const problems = (await problemsOf(dir)).join("\n");
    expect(problems).toContain("indent with spaces, not tabs");
    expect(problems).toContain("related lesson no-such-lesson does not exist");
  });
});
