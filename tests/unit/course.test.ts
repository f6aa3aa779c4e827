import { resolve } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { type Course, loadCourse, loadLabelledQuestions } from "../../server/tutor/course.ts";
import type { Lesson } from "../../shared/schemas/course.ts";
import { compilePython, runPython } from "../helpers/python.ts";

const CONTENT = resolve(import.meta.dirname, "../../content");
// The course is the product's content: it is checked in full, with CPython running every exercise.
const languages = ["en", "fr"] as const;

let course: Course;
beforeAll(async () => {
  course = await loadCourse(CONTENT);
});

describe("the course in content/", () => {
  it("has at least 24 lessons in each language, numbered 1, 2, 3, ...", () => {
    for (const language of languages) {
      const orders = course.lessons[language].map((l) => l.order);
      expect(orders.length).toBeGreaterThanOrEqual(24);
      expect(orders).toEqual(orders.map((_, i) => i + 1));
    }
  });

  it("covers the topics a beginner-to-intermediate Python course needs", () => {
    const words = course.lessons.en.map((l) => `${l.id} ${l.title} ${l.keywords.join(" ")}`.toLowerCase()).join("\n");
    for (const topic of [
      "variable",
      "string",
      "condition",
      "loop",
      "function",
      "list",
      "tuple",
      "dict",
      "set",
      "comprehension",
      "file",
      "exception",
      "module",
      "class",
      "inheritance",
      "generator",
      "decorator",
      "typ",
      "test",
      "debug",
      "standard library",
      "virtual environment",
      "pep 8",
    ]) {
      expect(words, topic).toContain(topic);
    }
  });

  for (const language of languages) {
    it(`runs every ${language} exercise: the solution passes its tests, the starter does not`, () => {
      const exercises = course.lessons[language].flatMap((l: Lesson) =>
        l.exercises.map((e) => ({ lesson: l.id, ...e })),
      );
      expect(exercises.length).toBeGreaterThanOrEqual(24);
      const solved = runPython(
        exercises.map((e) => ({ name: `${e.lesson}/${e.id} solution`, code: `${e.solution}\n${e.tests}` })),
      );
      expect(solved.filter((r) => !r.ok)).toEqual([]);
      const started = runPython(
        exercises.map((e) => ({ name: `${e.lesson}/${e.id} starter`, code: `${e.starter}\n${e.tests}` })),
      );
      expect(started.filter((r) => r.ok).map((r) => r.name)).toEqual([]);
    });

    it(`has ${language} examples that are valid Python`, () => {
      const examples = course.lessons[language].flatMap((l) =>
        l.examples.map((x, i) => ({ name: `${l.id} example ${i + 1}`, code: x.code })),
      );
      expect(compilePython(examples).filter((r) => !r.ok)).toEqual([]);
    });
  }

  it("has a labelled set of at least 60 learner questions, 30 per language, each naming a lesson that exists", async () => {
    const questions = await loadLabelledQuestions(CONTENT);
    for (const language of languages) {
      expect(questions.filter((q) => q.language === language).length).toBeGreaterThanOrEqual(30);
    }
    expect(questions.filter((q) => !course.byId.has(q.lesson))).toEqual([]);
    expect(new Set(questions.map((q) => q.question.toLowerCase())).size).toBe(questions.length);
  });
});
