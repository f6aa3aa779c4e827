import { resolve } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { type Course, loadCourse, loadLabelledQuestions } from "../../server/tutor/course.ts";
import { analyze, CourseIndex, chunkCourse, detectLanguage, type Passage } from "../../server/tutor/retrieval.ts";
import type { CourseLanguage, LabelledQuestion } from "../../shared/schemas/course.ts";

const CONTENT = resolve(import.meta.dirname, "../../content");
const languages = ["en", "fr"] as const;

let course: Course;
let questions: LabelledQuestion[];
let index: CourseIndex;
let passages: Passage[];

beforeAll(async () => {
  course = await loadCourse(CONTENT);
  questions = await loadLabelledQuestions(CONTENT);
  const start = performance.now();
  index = CourseIndex.build(course);
  console.log(`retrieval: built the index of the whole course in ${(performance.now() - start).toFixed(0)} ms`);
  passages = chunkCourse(course);
});

const top = (query: string, language: CourseLanguage, limit = 3) =>
  index.lessons(query, language, limit).map((h) => h.lessonId);

describe("chunkCourse", () => {
  it("gives each lesson a summary and one passage per section, example and exercise, with unique ids", () => {
    for (const language of languages) {
      for (const lesson of course.lessons[language]) {
        const own = passages.filter((p) => p.lessonId === lesson.id && p.language === language);
        const count = (kind: Passage["kind"]) => own.filter((p) => p.kind === kind).length;
        expect(count("summary")).toBe(1);
        expect(count("section")).toBe(lesson.sections.length);
        expect(count("example")).toBe(lesson.examples.length);
        expect(count("exercise")).toBe(lesson.exercises.length);
        expect(own.every((p) => p.lessonTitle === lesson.title && p.order === lesson.order)).toBe(true);
      }
    }
    expect(new Set(passages.map((p) => p.id)).size).toBe(passages.length);
  });

  it("never copies an exercise's solution, tests, starter or hints into a passage", () => {
    // Mark every hidden field with a unique line: whatever the content, none may surface.
    const marked = structuredClone(course);
    let n = 0;
    const mark = () => `hidden_marker_${++n} = 1\n`;
    for (const language of languages) {
      for (const lesson of marked.lessons[language]) {
        for (const e of lesson.exercises) {
          e.solution += mark();
          e.tests += mark();
          e.starter += mark();
          e.hints = e.hints.map((h) => h + mark());
        }
      }
    }
    const leaks = chunkCourse(marked).filter((p) => p.text.includes("hidden_marker_"));
    expect(leaks.map((p) => p.id)).toEqual([]);
  });

  it("never shows a solution line in a passage unless the course teaches that line elsewhere", () => {
    // The lessons teach the idioms the exercises practise (`counts.get(word, 0) + 1`, `return wrapper`), so
    // some solution lines rightly appear in sections and examples. A line that the course shows nowhere but
    // in a solution must not appear in any passage, and an exercise's own passage shows none beyond its prompt.
    const taught = languages
      .flatMap((language) =>
        course.lessons[language].flatMap((l) => [...l.sections.map((s) => s.body), ...l.examples.map((e) => e.code)]),
      )
      .join("\n");
    const leaks: string[] = [];
    let checked = 0;
    let shared = 0;
    for (const language of languages) {
      for (const lesson of course.lessons[language]) {
        for (const e of lesson.exercises) {
          const shown = `${e.starter}\n${e.prompt}`;
          const own = passages.find((p) => p.id === `${language}/${lesson.id}#exercise-${e.id}`);
          for (const line of e.solution.split("\n").map((l) => l.trim())) {
            // Non-trivial: long enough to say something, not a comment, not already given to the learner.
            if (line.length < 12 || line.startsWith("#") || shown.includes(line)) continue;
            checked++;
            if (taught.includes(line)) shared++;
            if (own?.text.includes(line)) leaks.push(`${e.id}: its own passage shows ${line}`);
            if (taught.includes(line)) continue;
            for (const p of passages) if (p.text.includes(line)) leaks.push(`${e.id}: ${p.id} shows ${line}`);
          }
        }
      }
    }
    console.log(`retrieval: ${checked} solution lines checked, ${shared} of them also taught in a lesson`);
    expect(leaks).toEqual([]);
  });
});

describe("CourseIndex on the labelled questions", () => {
  it("finds the labelled lesson in the top 3 for at least 90% of the questions in each language", () => {
    const start = performance.now();
    const results = questions.map((q) => ({ q, got: top(q.question, q.language) }));
    console.log(
      `retrieval: ran ${questions.length} labelled questions in ${(performance.now() - start).toFixed(0)} ms`,
    );
    const misses = results
      .filter((r) => !r.got.includes(r.q.lesson))
      .map((r) => `[${r.q.language}] ${r.q.question}\n  expected ${r.q.lesson}, got ${r.got.join(", ")}`);
    const rate = (rs: typeof results, k: number) =>
      rs.filter((r) => r.got.slice(0, k).includes(r.q.lesson)).length / rs.length;
    const rows = [...languages, "all"].map((language) => {
      const rs = results.filter((r) => language === "all" || r.q.language === language);
      return { language, n: rs.length, top1: rate(rs, 1), top3: rate(rs, 3) };
    });
    console.log(
      rows
        .map((r) => `retrieval: ${r.language}: ${r.n} questions, top-1 ${pct(r.top1)}, top-3 ${pct(r.top3)}`)
        .join("\n"),
      misses.length ? `\ntop-3 misses:\n${misses.join("\n")}` : "",
    );
    for (const r of rows) {
      expect(r.n).toBeGreaterThan(0);
      expect(r.top3, `${r.language} top-3 misses:\n${misses.join("\n")}`).toBeGreaterThanOrEqual(0.9);
    }
  });
});

const pct = (x: number) => `${(100 * x).toFixed(1)}%`;

describe("CourseIndex on learners' spelling", () => {
  it("ignores accents and case", () => {
    const expected = top("clé absente dans un dictionnaire", "fr");
    expect(expected[0]).toBe("dictionaries");
    expect(top("cle absente dans un dictionnaire", "fr")).toEqual(expected);
    expect(top("CLÉ ABSENTE DANS UN DICTIONNAIRE", "fr")).toEqual(expected);
    expect(top("heritage", "fr")[0]).toBe("inheritance");
  });

  it("tolerates typos", () => {
    expect(top("dictionaire", "fr")[0]).toBe("dictionaries");
    expect(top("dictionnare", "fr")[0]).toBe("dictionaries");
    expect(top("fonctoin", "fr")[0]).toBe("functions");
    expect(top("exeption", "en")[0]).toBe("exceptions");
    expect(top("how do I catch an exeption", "en")[0]).toBe("exceptions");
    expect(top("inheritence", "en")[0]).toBe("inheritance");
    expect(top("genrator", "en")[0]).toBe("iterators-and-generators");
  });

  it("reads Python names the way learners write them", () => {
    expect(analyze("KeyError", "en")).toEqual(expect.arrayContaining(["keyerror", "key", "error"]));
    expect(analyze("keyerror", "en")).toEqual(expect.arrayContaining(["keyerror", "key", "error"]));
    expect(analyze("__init__ is_valid", "en")).toEqual(
      expect.arrayContaining(["__init__", "init", "is_valid", "valid"]),
    );
    expect(analyze("f-string", "en")).toContain("fstring");
    expect(analyze("f string", "en")).toContain("fstring");
    expect(analyze("pep 8", "en")).toContain("pep8");
    expect(analyze("what does // do", "en")).toContain("//");
    for (const q of ["keyerror", "KeyError", "key error"]) expect(top(q, "en")[0], q).toBe("dictionaries");
    for (const q of ["f-string", "fstring", "f string"]) expect(top(q, "en")[0], q).toBe("strings");
    for (const q of ["pep 8", "PEP8"]) expect(top(q, "fr")[0], q).toBe("style-and-pep8");
    expect(top("__init__", "en")).toContain("classes");
    expect(top("what is the difference between any() and all()", "en")).toContain("functional-tools");
  });

  it("finds the lesson behind a pasted traceback", () => {
    const line = 'TypeError: can only concatenate str (not "int") to str';
    for (const language of languages) {
      expect(top(line, language).some((id) => id === "strings" || id === "variables-and-types")).toBe(true);
    }
    const traceback = [
      "Traceback (most recent call last):",
      '  File "app.py", line 12, in <module>',
      "    print(10 / n)",
      "ZeroDivisionError: division by zero",
    ].join("\n");
    const got = top(traceback, "en");
    // The frame lines name files and modules in every traceback: they must not pull those lessons up.
    expect(got).not.toContain("files");
    expect(got.some((id) => id === "numbers-and-arithmetic" || id === "exceptions")).toBe(true);
  });

  it("returns passages of the asked language, best first, within the limit", () => {
    const hits = index.passages("comment parcourir un dictionnaire", "fr", 5);
    expect(hits.length).toBe(5);
    expect(hits.every((h) => h.passage.language === "fr")).toBe(true);
    expect(hits.map((h) => h.score)).toEqual([...hits.map((h) => h.score)].sort((a, b) => b - a));
    expect(hits[0]?.passage.lessonId).toBe("dictionaries");
    const lesson = index.lessons("comment parcourir un dictionnaire", "fr", 1)[0];
    expect(lesson?.passages.length).toBeGreaterThan(0);
    expect(lesson?.passages.every((h) => h.passage.lessonId === lesson.lessonId)).toBe(true);
  });

  it("finds nothing for a question made only of stop words or punctuation", () => {
    expect(index.lessons("the a of", "en")).toEqual([]);
    expect(index.passages("?!", "fr")).toEqual([]);
    expect(index.lessons("", "fr")).toEqual([]);
  });
});

describe("detectLanguage", () => {
  it("tells French from English and defaults to English", () => {
    for (const s of [
      "comment lire un fichier ligne par ligne ?",
      "pourquoi ma boucle ne s'arrête jamais",
      "c'est quoi une classe",
      "ValueError: could not convert string to float, pourquoi ?",
    ])
      expect(detectLanguage(s), s).toBe("fr");
    for (const s of [
      "How do I read a file line by line?",
      "why does my loop never stop",
      'TypeError: can only concatenate str (not "int") to str',
      "",
    ])
      expect(detectLanguage(s), s).toBe("en");
  });
});
