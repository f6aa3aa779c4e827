import { resolve } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { type Course, loadCourse } from "../../server/tutor/course.ts";
import { buildMessages, classifyQuestion, type ExerciseContext } from "../../server/tutor/prompts.ts";
import { OfflineProvider } from "../../server/tutor/providers/offline.ts";
import { type GenerateRequest, ProviderError } from "../../server/tutor/providers/types.ts";
import { CourseIndex } from "../../server/tutor/retrieval.ts";
import type { CourseLanguage } from "../../shared/schemas/course.ts";

let course: Course;
let index: CourseIndex;
let offline: OfflineProvider;
beforeAll(async () => {
  course = await loadCourse(resolve(import.meta.dirname, "../../content"));
  index = CourseIndex.build(course);
  offline = new OfflineProvider(course);
});

function ask(question: string, language: CourseLanguage, exercise?: ExerciseContext): GenerateRequest {
  const kind = classifyQuestion(question, exercise !== undefined);
  const passages = index.passages(question, language, 6);
  const messages = buildMessages({
    question,
    language,
    kind,
    level: "beginner",
    history: [],
    passages,
    exercise,
    maxPromptTokens: 3000,
  });
  return { messages, question, language, kind, level: "beginner", passages, exercise, maxTokens: 600 };
}

async function streamAll(request: GenerateRequest, signal = new AbortController().signal) {
  const deltas: string[] = [];
  let done: unknown;
  for await (const e of offline.stream(request, signal)) {
    if (e.type === "delta") deltas.push(e.text);
    else done = e;
  }
  return { deltas, text: deltas.join(""), done };
}

describe("the offline tutor", () => {
  it("answers a beginner's question from the course: labelled, explanation, example, a question back, links", async () => {
    const { deltas, text, done } = await streamAll(
      ask("How do I get a value from a dictionary without a KeyError?", "en"),
    );
    expect(deltas.length).toBeGreaterThan(20);
    expect(text).toContain("Offline tutor");
    expect(text).toContain("Dictionaries");
    expect(text).toMatch(/```python\n[\s\S]+\n```/);
    expect(text).toContain("**Your turn:**");
    expect(text).toContain("(/lessons/dictionaries)");
    expect(done).toMatchObject({ type: "done", model: "doctorpy-offline", usage: { estimated: true } });
  });

  it("answers in French to a French question", async () => {
    const { text } = await streamAll(ask("Comment parcourir une liste avec son indice ?", "fr"));
    expect(text).toContain("Tuteur hors ligne");
    expect(text).toContain("**À vous :**");
    expect(text).toMatch(/\/lessons\/(loops|lists)/);
  });

  it("helps with an error by reading the traceback, not by fixing the code", async () => {
    const request = ask(
      'Traceback (most recent call last):\n  File "a.py", line 2\nTypeError: can only concatenate str (not "int") to str',
      "en",
    );
    expect(request.kind).toBe("debugging");
    const { text } = await streamAll(request);
    expect(text).toContain("traceback from the bottom");
  });

  it("gives nothing of an exercise before an attempt, then the next hint only, and never the solution", async () => {
    const lesson = course.byId.get("dictionaries")?.en;
    const exercise = lesson?.exercises[0];
    if (!lesson || !exercise) throw new Error("the course lacks the dictionaries exercise");
    const context = (attempts: string[], hintsGiven: string[]): ExerciseContext => ({
      lessonId: lesson.id,
      exerciseId: exercise.id,
      prompt: exercise.prompt,
      attempts,
      hintsGiven,
      nextHint: exercise.hints[hintsGiven.length],
    });
    const solutionLines = exercise.solution
      .split("\n")
      .filter((l) => l.trim().length > 12 && !l.trim().startsWith("#"));

    const before = (await streamAll(ask("Can you solve this for me?", "en", context([], [])))).text;
    expect(before).toContain("Try it first");
    const first = (await streamAll(ask("Still stuck", "en", context(["def f():\n    pass\n"], [])))).text;
    expect(first).toContain(`**Hint 1:** ${exercise.hints[0]}`);
    expect(first).not.toContain(exercise.hints[1] as string);
    const all = exercise.hints;
    const last = (await streamAll(ask("Still stuck", "en", context(["x = 1\n"], all)))).text;
    expect(last).toContain("You have had every hint");
    for (const text of [before, first, last]) for (const line of solutionLines) expect(text).not.toContain(line.trim());
  });

  it("says so when the course has nothing on the question", async () => {
    const { text } = await streamAll(ask("zzqx wvvq kkjj", "en"));
    expect(text).toContain("could not find this in the course");
  });

  it("stops at once when cancelled", async () => {
    const ctl = new AbortController();
    const got: string[] = [];
    await expect(async () => {
      for await (const e of offline.stream(ask("What is a set?", "en"), ctl.signal)) {
        if (e.type === "delta") got.push(e.text);
        if (got.length === 5) ctl.abort();
      }
    }).rejects.toBeInstanceOf(ProviderError);
    expect(got.length).toBe(5);
  });
});

describe("prompts", () => {
  it("routes questions by kind", () => {
    expect(classifyQuestion("What is a tuple?", false)).toBe("concept");
    expect(classifyQuestion("I get NameError: name 'x' is not defined", false)).toBe("debugging");
    expect(classifyQuestion("Can you review my code?\n```python\ndef f(x): return x*2\n```", false)).toBe(
      "code_review",
    );
    expect(classifyQuestion("What is a tuple?", true)).toBe("exercise_help");
  });

  it("keeps the prompt within its token budget, dropping older conversation first and keeping the question", () => {
    const history = Array.from({ length: 200 }, (_, i) => ({
      author: "Ana",
      text: `message ${i} ${"blah ".repeat(40)}`,
      tutor: false,
    }));
    const passages = index.passages("list comprehension", "en", 8);
    const messages = buildMessages({
      question: "What is a list comprehension?",
      language: "en",
      kind: "concept",
      level: "beginner",
      history,
      passages,
      maxPromptTokens: 1500,
    });
    const tokens = messages.reduce((n, m) => n + Math.ceil(m.content.length / 4), 0);
    expect(tokens).toBeLessThanOrEqual(1500);
    expect(messages.at(-1)).toEqual({ role: "user", content: "What is a list comprehension?" });
    expect(messages[0]?.role).toBe("system");
    // the newest messages of the conversation are the ones kept
    const kept = messages.filter((m) => m.content.startsWith("Ana: message"));
    expect(kept.at(-1)?.content).toContain("message 199");
  });
});
