import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { parse } from "yaml";
import { type CourseLanguage, LabelledQuestion, Lesson } from "../../shared/schemas/course.ts";

/** The course as loaded from `content/`: every lesson in both languages, in order. */
export interface Course {
  lessons: Record<CourseLanguage, Lesson[]>;
  /** lesson id → its lesson in each language */
  byId: Map<string, Record<CourseLanguage, Lesson>>;
}

const FILE = /^(\d{2,3})-([a-z0-9-]+)\.(en|fr)\.yaml$/;

/** Thrown with every problem found, one per line, so that an author fixes them all in one pass. */
export class CourseError extends Error {
  constructor(readonly problems: string[]) {
    super(`the course in content/ has ${problems.length} problem(s):\n${problems.join("\n")}`);
    this.name = "CourseError";
  }
}

/**
 * Reads `<dir>/lessons/<order>-<id>.<language>.yaml`, validates each lesson with the shared schema and checks
 * that the two languages describe the same course: same lessons in the same order, same exercises, same number
 * of hints, same quiz answers. `related` must name lessons that exist.
 */
export async function loadCourse(dir: string): Promise<Course> {
  const problems: string[] = [];
  const lessons: Record<CourseLanguage, Lesson[]> = { en: [], fr: [] };
  const lessonsDir = join(dir, "lessons");
  for (const name of (await readdir(lessonsDir)).sort()) {
    if (!name.endsWith(".yaml")) continue;
    const m = FILE.exec(name);
    if (!m) {
      problems.push(`${name}: name it <order>-<id>.<en|fr>.yaml`);
      continue;
    }
    let raw: unknown;
    try {
      raw = parse(await readFile(join(lessonsDir, name), "utf8"));
    } catch (err) {
      problems.push(`${name}: not valid YAML: ${(err as Error).message.split("\n")[0]}`);
      continue;
    }
    const parsed = Lesson.safeParse(raw);
    if (!parsed.success) {
      for (const issue of parsed.error.issues)
        problems.push(`${name}: ${issue.path.join(".") || "(root)"}: ${issue.message}`);
      continue;
    }
    const lesson = parsed.data;
    if (lesson.order !== Number(m[1]) || lesson.id !== m[2] || lesson.language !== m[3]) {
      problems.push(`${name}: order, id and language inside must match the file name`);
      continue;
    }
    lessons[lesson.language].push(lesson);
  }

  const byId = new Map<string, Record<CourseLanguage, Lesson>>();
  const en = new Map(lessons.en.map((l) => [l.id, l]));
  const fr = new Map(lessons.fr.map((l) => [l.id, l]));
  for (const id of new Set([...en.keys(), ...fr.keys()])) {
    const a = en.get(id);
    const b = fr.get(id);
    if (!a || !b) {
      problems.push(`${id}: missing in ${a ? "fr" : "en"}`);
      continue;
    }
    problems.push(...parity(a, b));
    byId.set(id, { en: a, fr: b });
  }
  for (const language of ["en", "fr"] as const) {
    const orders = lessons[language].map((l) => l.order);
    if (new Set(orders).size !== orders.length) problems.push(`${language}: two lessons share an order`);
    for (const l of lessons[language]) {
      for (const r of l.related)
        if (!byId.has(r) && !en.has(r)) problems.push(`${l.id}.${language}: related lesson ${r} does not exist`);
    }
    lessons[language].sort((x, y) => x.order - y.order);
  }
  if (problems.length > 0) throw new CourseError(problems);
  return { lessons, byId };
}

function parity(en: Lesson, fr: Lesson): string[] {
  const out: string[] = [];
  const where = `${en.id}`;
  if (en.order !== fr.order) out.push(`${where}: order differs between en and fr`);
  if (en.level !== fr.level) out.push(`${where}: level differs between en and fr`);
  const ex = (l: Lesson) => l.exercises.map((e) => `${e.id}/${e.hints.length}`).join(",");
  if (ex(en) !== ex(fr)) out.push(`${where}: exercises (ids and hint counts) differ: en ${ex(en)} vs fr ${ex(fr)}`);
  const quiz = (l: Lesson) => l.quiz.map((q) => `${q.choices.length}:${q.answer}`).join(",");
  if (quiz(en) !== quiz(fr)) out.push(`${where}: quiz (choices and answers) differ: en ${quiz(en)} vs fr ${quiz(fr)}`);
  if ([...en.related].sort().join() !== [...fr.related].sort().join()) out.push(`${where}: related lessons differ`);
  return out;
}

/** The labelled questions of `content/eval/*.yaml` (the offline tutor's retrieval test set). */
export async function loadLabelledQuestions(dir: string): Promise<LabelledQuestion[]> {
  const evalDir = join(dir, "eval");
  const out: LabelledQuestion[] = [];
  for (const name of (await readdir(evalDir)).sort()) {
    if (!name.endsWith(".yaml")) continue;
    const parsed = LabelledQuestion.array().safeParse(parse(await readFile(join(evalDir, name), "utf8")));
    if (!parsed.success) {
      throw new CourseError(parsed.error.issues.map((i) => `eval/${name}: ${i.path.join(".")}: ${i.message}`));
    }
    out.push(...parsed.data);
  }
  return out;
}
