import { EventEmitter } from "node:events";
import { and, asc, desc, eq, inArray, lt, sql } from "drizzle-orm";
import type { Db } from "../../db/client.ts";
import { answerFeedback, answers, users } from "../../db/schema.ts";
import { LIMITS } from "../../shared/limits.ts";
import type { CourseLanguage } from "../../shared/schemas/course.ts";
import type { Answer, AnswerPage, Feedback, FeedbackBody, TutorAskPayload } from "../../shared/schemas/tutor.ts";
import { AppError, conflict, forbidden, invalid, notFound, tooMany } from "../errors.ts";
import { assertCanChat } from "../rooms/chat.ts";
import { isManager, type RoomService } from "../rooms/rooms.ts";
import type { SettingsService } from "../settings/settings.ts";
import { type AnswerRecord, type AnswerRow, type AskContext, type TutorEventMap, toAnswer } from "./answers.ts";
import type { CourseService } from "./course-service.ts";
import type { TutorLimits } from "./limits.ts";
import type { AnswerLog } from "./live.ts";
import { classifyQuestion } from "./prompts.ts";
import { detectLanguage } from "./retrieval.ts";
import { type RunnerDeps, TutorRunner } from "./tutor-runner.ts";

export { type AnswerRecord, type AnswerRow, type TutorEventMap, toAnswer } from "./answers.ts";

/** What the tutor is built from (deps.ts wires the Redis-backed parts when clustered). */
export interface TutorDeps extends RunnerDeps {
  rooms: RoomService;
  settings: SettingsService;
}

const ACTIVE = ["queued", "streaming"] as const;

/**
 * The AI tutor in rooms. `ask` stores a queued answer at once and starts the room's queue (run by
 * `TutorRunner`); the others answer what members and moderators ask of an answer: cancel, review, rate, read.
 */
export class TutorService {
  readonly events = new EventEmitter<TutorEventMap>();
  /** asks the other nodes to cancel a generation they run (set by the realtime layer) */
  cancelElsewhere: (answerId: string) => void = () => {};
  private readonly runner: TutorRunner;
  private readonly db: Db;
  private readonly rooms: RoomService;
  private readonly settings: SettingsService;
  private readonly course: CourseService;
  private readonly limits: TutorLimits;
  private readonly answerLog: AnswerLog;

  constructor(d: TutorDeps) {
    this.db = d.db;
    this.rooms = d.rooms;
    this.settings = d.settings;
    this.course = d.course;
    this.limits = d.limits;
    this.answerLog = d.answerLog;
    this.runner = new TutorRunner(d, this.events);
  }

  /** Starts sweeping for work left behind (see TutorRunner). */
  start(intervalMs = 5000): void {
    this.runner.start(intervalMs);
  }

  /** Stops sweeping and ends this node's generations as `interrupted`, their text kept. */
  stop(): Promise<void> {
    return this.runner.stop();
  }

  /** Embeds the course for hybrid retrieval now, if an embeddings model is configured (true once ready). */
  warmUp(): Promise<boolean> {
    return this.runner.warmUp();
  }

  /** Whether this node is generating the answer now. */
  generating(answerId: string): boolean {
    return this.runner.generating(answerId);
  }

  /** Stops a generation if this node runs it (the others are asked through `cancelElsewhere`). */
  abort(answerId: string): void {
    this.runner.abort(answerId);
  }

  /** Stores the question's answer as queued, announces it and starts the room's queue. */
  async ask(roomId: string, user: { id: string; displayName: string }, payload: TutorAskPayload): Promise<Answer> {
    const { room, member } = await this.rooms.cachedStanding(roomId, user.id);
    assertCanChat({ room, member });
    if (!room.tutorEnabled) throw new AppError("tutor_off");
    const exercise = payload.exercise ? await this.exercise(payload.exercise, room.language) : undefined;
    const settings = await this.settings.get();
    await this.limits.spendQuestion(user.id, {
      perMinute: settings.tutorQuestionsPerMinute,
      tokensPerDay: settings.tutorTokensPerDay,
    });
    const [waiting] = await this.db
      .select({ n: sql<number>`count(*)::int` })
      .from(answers)
      .where(and(eq(answers.roomId, roomId), eq(answers.status, "queued")));
    if ((waiting?.n ?? 0) >= LIMITS.tutorQueueMax) throw tooMany(10);

    const language = detectLanguage(payload.question, room.language);
    const context: AskContext = { level: payload.level, cell: payload.cell, exercise: payload.exercise };
    const [row] = await this.db
      .insert(answers)
      .values({
        roomId,
        askerId: user.id,
        question: payload.question,
        context: context as unknown as Record<string, unknown>,
        status: "queued",
        kind: classifyQuestion(payload.question, exercise !== undefined),
        language,
      })
      .returning();
    const record = { row: row as AnswerRow, askerName: user.displayName };
    this.events.emit("queued", record);
    void this.runner.pump(roomId);
    return toAnswer(record, isManager(member.role));
  }

  /** Checks that the exercise exists (in either language) before anything is stored. */
  private async exercise(ex: NonNullable<TutorAskPayload["exercise"]>, language: CourseLanguage) {
    const { course } = await this.course.load();
    const lesson = course.byId.get(ex.lessonId)?.[language];
    const found = lesson?.exercises.find((e) => e.id === ex.exerciseId);
    if (!lesson || !found) throw invalid([{ path: "payload.exercise", message: "no such exercise in the course" }]);
    return found;
  }

  /**
   * Cancels an answer: the asker their own, owners and moderators any. A queued answer ends at once; a streaming
   * one is stopped by the node that generates it, which keeps the text so far and announces the end.
   */
  async cancel(roomId: string, userId: string, answerId: string): Promise<{ answer: Answer; byManager: boolean }> {
    const { member } = await this.rooms.standing(roomId, userId);
    const record = await this.find(roomId, answerId);
    const manager = isManager(member.role);
    const own = record.row.askerId === userId;
    if (!own && !manager) throw forbidden("Only the asker, owners and moderators cancel an answer");
    if (record.row.status === "queued") {
      const [row] = await this.db
        .update(answers)
        .set({ status: "cancelled", error: "cancelled", cancelledBy: userId, finishedAt: new Date() })
        .where(and(eq(answers.id, answerId), eq(answers.status, "queued")))
        .returning();
      if (row) {
        const done = { row, askerName: record.askerName };
        this.events.emit("done", done);
        return { answer: toAnswer(done, manager), byManager: !own };
      }
      // It started meanwhile: stop the generation instead.
    } else if (record.row.status !== "streaming") {
      throw conflict("The answer has already ended");
    }
    await this.db.update(answers).set({ cancelledBy: userId }).where(eq(answers.id, answerId));
    this.runner.abort(answerId);
    this.cancelElsewhere(answerId);
    return { answer: toAnswer(await this.find(roomId, answerId), manager), byManager: !own };
  }

  /** A moderator releases a held answer to the room or rejects it. */
  async review(roomId: string, userId: string, answerId: string, approve: boolean): Promise<Answer> {
    await this.rooms.managing(roomId, userId);
    const [row] = await this.db
      .update(answers)
      .set({ status: approve ? "done" : "rejected", reviewedBy: userId, reviewedAt: new Date() })
      .where(and(eq(answers.id, answerId), eq(answers.roomId, roomId), eq(answers.status, "held")))
      .returning();
    if (!row) {
      await this.find(roomId, answerId);
      throw conflict("Only a held answer can be reviewed");
    }
    const record = { row, askerName: (await this.find(roomId, answerId)).askerName };
    this.events.emit("reviewed", record);
    return toAnswer(record, true);
  }

  /** Rates a finished answer: one rating per user and answer, which a new one replaces. */
  async rate(roomId: string, userId: string, answerId: string, body: FeedbackBody): Promise<Feedback> {
    await this.rooms.standing(roomId, userId);
    const record = await this.find(roomId, answerId);
    if (record.row.status !== "done") throw conflict("Only a finished answer can be rated");
    const now = new Date();
    const comment = body.comment ? body.comment : null;
    const [row] = await this.db
      .insert(answerFeedback)
      .values({ answerId, userId, rating: body.rating, comment, createdAt: now, updatedAt: now })
      .onConflictDoUpdate({
        target: [answerFeedback.answerId, answerFeedback.userId],
        set: { rating: body.rating, comment, updatedAt: now },
      })
      .returning();
    const saved = row as typeof answerFeedback.$inferSelect;
    return { answerId, rating: saved.rating, comment: saved.comment, updatedAt: saved.updatedAt.toISOString() };
  }

  /** One answer of a room, for a member (the text so far while it streams). */
  async get(roomId: string, userId: string, answerId: string): Promise<Answer> {
    const { member } = await this.rooms.standing(roomId, userId);
    const record = await this.find(roomId, answerId);
    return this.view(record, isManager(member.role));
  }

  /**
   * The answers of a room still in the making (queued and streaming, and for managers the held ones awaiting
   * review), oldest first, with the text so far: what a client joining the room needs. The caller has checked
   * membership and joined the room's channel first.
   */
  async live(roomId: string, manager: boolean): Promise<Answer[]> {
    const statuses: AnswerRow["status"][] = manager ? [...ACTIVE, "held"] : [...ACTIVE];
    const rows = await this.db
      .select({ row: answers, askerName: users.displayName })
      .from(answers)
      .innerJoin(users, eq(users.id, answers.askerId))
      .where(and(eq(answers.roomId, roomId), inArray(answers.status, statuses)))
      .orderBy(asc(answers.createdAt));
    return Promise.all(rows.map((r) => this.view(r, manager)));
  }

  /** A page of a room's answers, newest first. */
  async history(roomId: string, userId: string, before: string | undefined, limit: number): Promise<AnswerPage> {
    const { member } = await this.rooms.standing(roomId, userId);
    const where = before
      ? and(eq(answers.roomId, roomId), lt(answers.createdAt, new Date(before)))
      : eq(answers.roomId, roomId);
    const rows = await this.db
      .select({ row: answers, askerName: users.displayName })
      .from(answers)
      .innerJoin(users, eq(users.id, answers.askerId))
      .where(where)
      .orderBy(desc(answers.createdAt))
      .limit(limit + 1);
    const page = rows.slice(0, limit);
    const items = await Promise.all(page.map((r) => this.view(r, isManager(member.role))));
    return { items, nextBefore: rows.length > limit ? (items.at(-1)?.createdAt ?? null) : null };
  }

  private async view(record: AnswerRecord, manager: boolean): Promise<Answer> {
    if (record.row.status !== "streaming") return toAnswer(record, manager);
    return toAnswer(record, manager, await this.answerLog.read(record.row.id));
  }

  private async find(roomId: string, answerId: string): Promise<AnswerRecord> {
    const [found] = await this.db
      .select({ row: answers, askerName: users.displayName })
      .from(answers)
      .innerJoin(users, eq(users.id, answers.askerId))
      .where(and(eq(answers.id, answerId), eq(answers.roomId, roomId)));
    if (!found) throw notFound("Answer");
    return found;
  }
}
