import { z } from "zod";

/** The two languages every lesson is written in. */
export const CourseLanguage = z.enum(["en", "fr"]);
export type CourseLanguage = z.infer<typeof CourseLanguage>;

export const LessonLevel = z.enum(["beginner", "intermediate"]);

const Slug = z
  .string()
  .regex(/^[a-z0-9]+(-[a-z0-9]+)*$/, "lowercase words joined by hyphens")
  .max(60);
const Text = (max: number) => z.string().trim().min(1).max(max);
/** Python source: non-empty, no tabs (PEP 8 indents with spaces), ends with a newline. */
const Python = z
  .string()
  .min(1)
  .max(6000)
  .refine((s) => !s.includes("\t"), "indent with spaces, not tabs")
  .refine((s) => s.endsWith("\n"), "end with a newline");

export const LessonSection = z.strictObject({
  heading: Text(120),
  /** Markdown; code in fenced ```python blocks */
  body: Text(6000),
});

export const LessonExample = z.strictObject({
  title: Text(120),
  code: Python,
  /** Markdown: what the example shows and what it prints */
  explanation: Text(2000),
});

export const LessonExercise = z.strictObject({
  id: Slug,
  title: Text(120),
  /** Markdown: what to write, with an example of use */
  prompt: Text(3000),
  /** What the learner starts from: it must fail `tests` */
  starter: Python,
  /** Python run after the learner's code in the same module; plain `assert`s, silent when they pass */
  tests: Python,
  /** A reference solution: it must pass `tests`. Never shown before the learner has tried. */
  solution: Python,
  /** From a nudge to nearly the answer, given in this order */
  hints: z.array(Text(600)).min(2).max(5),
});

export const QuizQuestion = z
  .strictObject({
    question: Text(500),
    choices: z.array(Text(300)).min(2).max(5),
    /** index into `choices` */
    answer: z.number().int().min(0),
    explanation: Text(1000),
  })
  .refine((q) => q.answer < q.choices.length, { message: "answer must index one of the choices", path: ["answer"] });

/** One lesson in one language, as stored in `content/lessons/<order>-<id>.<language>.yaml`. */
export const Lesson = z.strictObject({
  id: Slug,
  order: z.number().int().min(1).max(999),
  language: CourseLanguage,
  level: LessonLevel,
  title: Text(120),
  /** One or two sentences: what the learner will be able to do */
  summary: Text(400),
  /** Search words, in the lesson's language (synonyms a learner might type) */
  keywords: z.array(Text(60)).min(3).max(40),
  sections: z.array(LessonSection).min(2).max(12),
  examples: z.array(LessonExample).min(1).max(8),
  exercises: z.array(LessonExercise).min(1).max(6),
  quiz: z.array(QuizQuestion).min(3).max(10),
  /** ids of lessons to read next or before */
  related: z.array(Slug).max(8).default([]),
});
export type Lesson = z.infer<typeof Lesson>;
export type LessonExercise = z.infer<typeof LessonExercise>;

/** A learner question with the lesson that should answer it: the offline tutor's retrieval test set. */
export const LabelledQuestion = z.strictObject({
  language: CourseLanguage,
  question: Text(500),
  lesson: Slug,
});
export type LabelledQuestion = z.infer<typeof LabelledQuestion>;

/** `?lang=` of the course endpoints. */
export const LanguageQuery = z.object({ lang: CourseLanguage.default("en") });

/** A lesson in the course's table of contents. */
export const LessonSummary = z
  .object({ id: z.string(), order: z.number().int(), level: LessonLevel, title: z.string(), summary: z.string() })
  .meta({ id: "LessonSummary" });
export type LessonSummary = z.infer<typeof LessonSummary>;

export const LessonList = z.object({ items: z.array(LessonSummary) }).meta({ id: "LessonList" });

/** A lesson as learners read it: everything but the exercises' reference solutions. */
export const LessonView = z
  .object({
    id: z.string(),
    order: z.number().int(),
    language: CourseLanguage,
    level: LessonLevel,
    title: z.string(),
    summary: z.string(),
    sections: z.array(z.object({ heading: z.string(), body: z.string() })),
    examples: z.array(z.object({ title: z.string(), code: z.string(), explanation: z.string() })),
    exercises: z.array(
      z.object({
        id: z.string(),
        title: z.string(),
        prompt: z.string(),
        starter: z.string(),
        tests: z.string(),
        /** in order; the client reveals them one at a time */
        hints: z.array(z.string()),
      }),
    ),
    quiz: z.array(
      z.object({
        question: z.string(),
        choices: z.array(z.string()),
        answer: z.number().int(),
        explanation: z.string(),
      }),
    ),
    related: z.array(LessonSummary),
  })
  .meta({ id: "LessonView" });
export type LessonView = z.infer<typeof LessonView>;

export const LessonParams = z.object({ id: z.string().regex(/^[a-z0-9-]{1,60}$/, "a lesson id") });

export const LessonSearchQuery = z.object({
  q: z.string().trim().min(1).max(500),
  /** the language of the question; guessed from it when absent */
  lang: CourseLanguage.optional(),
  limit: z.coerce.number().int().min(1).max(10).default(3),
});

export const LessonSearchResults = z
  .object({
    language: CourseLanguage,
    items: z.array(
      z.object({
        lesson: LessonSummary,
        score: z.number(),
        passages: z.array(z.object({ kind: z.string(), heading: z.string(), text: z.string() })),
      }),
    ),
  })
  .meta({ id: "LessonSearchResults" });
export type LessonSearchResults = z.infer<typeof LessonSearchResults>;
