import type {
  CourseLanguage,
  Lesson,
  LessonSearchResults,
  LessonSummary,
  LessonView,
} from "../../shared/schemas/course.ts";
import { notFound } from "../errors.ts";
import { type Course, loadCourse } from "./course.ts";
import { CourseIndex, detectLanguage } from "./retrieval.ts";

const summary = (l: Lesson): LessonSummary => ({
  id: l.id,
  order: l.order,
  level: l.level,
  title: l.title,
  summary: l.summary,
});

/**
 * The course as learners read and search it. Loaded and indexed on first use (about half a second), once per
 * process: a node that nobody asks about lessons never pays for it. Reference solutions never leave it.
 */
export class CourseService {
  private loaded: Promise<{ course: Course; index: CourseIndex }> | undefined;

  constructor(private readonly dir: string) {}

  /** The course and its search index (the tutor's retrieval uses the same ones). */
  load(): Promise<{ course: Course; index: CourseIndex }> {
    this.loaded ??= loadCourse(this.dir).then(
      (course) => ({ course, index: CourseIndex.build(course) }),
      (err: unknown) => {
        this.loaded = undefined;
        throw err;
      },
    );
    return this.loaded;
  }

  async list(language: CourseLanguage): Promise<LessonSummary[]> {
    const { course } = await this.load();
    return course.lessons[language].map(summary);
  }

  async get(id: string, language: CourseLanguage): Promise<LessonView> {
    const { course } = await this.load();
    const lesson = course.byId.get(id)?.[language];
    if (!lesson) throw notFound("Lesson");
    return {
      id: lesson.id,
      order: lesson.order,
      language: lesson.language,
      level: lesson.level,
      title: lesson.title,
      summary: lesson.summary,
      sections: lesson.sections,
      examples: lesson.examples,
      exercises: lesson.exercises.map(({ id, title, prompt, starter, tests, hints }) => ({
        id,
        title,
        prompt,
        starter,
        tests,
        hints,
      })),
      quiz: lesson.quiz,
      related: lesson.related
        .map((r) => course.byId.get(r)?.[language])
        .filter((l): l is Lesson => l !== undefined)
        .map(summary),
    };
  }

  async search(query: string, language: CourseLanguage | undefined, limit: number): Promise<LessonSearchResults> {
    const { course, index } = await this.load();
    const lang = language ?? detectLanguage(query);
    const items = index.lessons(query, lang, limit).flatMap((hit) => {
      const lesson = course.byId.get(hit.lessonId)?.[lang];
      if (!lesson) return [];
      return [
        {
          lesson: summary(lesson),
          score: hit.score,
          passages: hit.passages.slice(0, 3).map((p) => ({
            kind: p.passage.kind,
            heading: p.passage.heading,
            text: p.passage.text,
          })),
        },
      ];
    });
    return { language: lang, items };
  }
}
