import { and, desc, eq, lt } from "drizzle-orm";
import type { Db } from "../../db/client.ts";
import { answers, type ExperimentVariantRow, messages, users } from "../../db/schema.ts";
import type { CourseLanguage } from "../../shared/schemas/course.ts";
import type { AnswerSource } from "../../shared/schemas/tutor.ts";
import type { AnswerRow, AskContext } from "./answers.ts";
import { buildMessages, type ExerciseContext, type PromptInput } from "./prompts.ts";
import type { GenerateRequest } from "./providers/types.ts";
import type { PassageHit } from "./retrieval.ts";
import type { RunnerDeps } from "./tutor-runner.ts";

/** The provider's request: the course passages, the room's recent conversation, the exercise and the cell. */
export async function prepareRequest(
  d: Pick<RunnerDeps, "db" | "course" | "config" | "retriever">,
  row: AnswerRow,
  roomLanguage: CourseLanguage,
  variant?: ExperimentVariantRow,
): Promise<{ sources: AnswerSource[]; request: GenerateRequest }> {
  const { course } = await d.course.load();
  const language = row.language;
  const ctx = row.context as unknown as AskContext;
  const passages: PassageHit[] = await d.retriever.passages(row.question, language, 6);
  let exercise: ExerciseContext | undefined;
  if (ctx.exercise) {
    const lesson =
      course.byId.get(ctx.exercise.lessonId)?.[language] ?? course.byId.get(ctx.exercise.lessonId)?.[roomLanguage];
    const ex = lesson?.exercises.find((e) => e.id === ctx.exercise?.exerciseId);
    if (lesson && ex) {
      const seen = Math.min(ctx.exercise.hintsSeen, ex.hints.length);
      exercise = {
        lessonId: lesson.id,
        exerciseId: ex.id,
        prompt: ex.prompt,
        attempts: ctx.exercise.attempts,
        hintsGiven: ex.hints.slice(0, seen),
        nextHint: ex.hints[seen],
      };
    }
  }
  const history = await recentConversation(d.db, row);
  const input: PromptInput = {
    question: row.question,
    language,
    kind: row.kind as PromptInput["kind"],
    level: ctx.level ?? "beginner",
    history,
    passages,
    cell: ctx.cell,
    exercise,
    maxPromptTokens: d.config.maxPromptTokens,
  };
  const lessonIds = [
    ...new Set([...(exercise ? [exercise.lessonId] : []), ...passages.map((p) => p.passage.lessonId)]),
  ];
  const sources = lessonIds.slice(0, 3).flatMap((id) => {
    const lesson = course.byId.get(id)?.[language];
    return lesson ? [{ lessonId: id, title: lesson.title }] : [];
  });
  const messages = buildMessages(input);
  const system = messages[0];
  if (variant?.instructions && system) system.content = `${system.content}\n\n${variant.instructions}`;
  const request: GenerateRequest = {
    messages,
    question: row.question,
    language,
    kind: input.kind,
    level: input.level,
    passages,
    exercise,
    maxTokens: d.config.maxAnswerTokens,
    ...(variant?.model ? { model: variant.model } : {}),
    ...(variant?.temperature !== undefined ? { temperature: variant.temperature } : {}),
  };
  return { sources, request };
}

/** The room's last chat messages and finished answers before this question, oldest first. */
async function recentConversation(db: Db, row: AnswerRow): Promise<PromptInput["history"]> {
  const [chat, earlier] = await Promise.all([
    db
      .select({ text: messages.body, author: users.displayName, at: messages.createdAt, deleted: messages.deletedAt })
      .from(messages)
      .innerJoin(users, eq(users.id, messages.authorId))
      .where(and(eq(messages.roomId, row.roomId), lt(messages.createdAt, row.createdAt)))
      .orderBy(desc(messages.seq))
      .limit(10),
    db
      .select({ question: answers.question, text: answers.text, at: answers.createdAt, author: users.displayName })
      .from(answers)
      .innerJoin(users, eq(users.id, answers.askerId))
      .where(and(eq(answers.roomId, row.roomId), eq(answers.status, "done"), lt(answers.createdAt, row.createdAt)))
      .orderBy(desc(answers.createdAt))
      .limit(2),
  ]);
  const turns: { at: Date; turn: PromptInput["history"][number] }[] = [];
  for (const m of chat)
    if (!m.deleted) turns.push({ at: m.at, turn: { author: m.author, text: m.text, tutor: false } });
  for (const a of earlier) {
    turns.push({ at: a.at, turn: { author: a.author, text: a.question, tutor: false } });
    turns.push({ at: new Date(a.at.getTime() + 1), turn: { author: "DoctorPy", text: a.text, tutor: true } });
  }
  return turns.sort((x, y) => x.at.getTime() - y.at.getTime()).map((t) => t.turn);
}
