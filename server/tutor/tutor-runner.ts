import type { EventEmitter } from "node:events";
import { and, asc, eq, inArray, lt } from "drizzle-orm";
import type { Db } from "../../db/client.ts";
import { answers, rooms, users } from "../../db/schema.ts";
import type { AnswerError, AnswerSource } from "../../shared/schemas/tutor.ts";
import type { TutorConfig } from "../config.ts";
import type { Logger } from "../log.ts";
import { type AnswerCache, answerCacheKey } from "./answer-cache.ts";
import type { AnswerRecord, AnswerRow, AskContext, TutorEventMap } from "./answers.ts";
import { prepareRequest } from "./context.ts";
import type { CourseService } from "./course-service.ts";
import type { ExperimentService } from "./experiments.ts";
import type { TutorLimits } from "./limits.ts";
import type { AnswerLog, RoomLocks } from "./live.ts";
import type { TutorModels } from "./models.ts";
import { type Provider, ProviderError, type Usage } from "./providers/types.ts";
import type { TutorRetriever } from "./retriever.ts";

/** What the runner needs (deps.ts wires the Redis-backed parts when clustered). */
export interface RunnerDeps {
  db: Db;
  course: CourseService;
  config: TutorConfig;
  log: Logger;
  answerLog: AnswerLog;
  locks: RoomLocks;
  limits: TutorLimits;
  models: TutorModels;
  experiments: ExperimentService;
  cache: AnswerCache;
  retriever: TutorRetriever;
}

/** How a generation ended, before it is stored. */
interface Outcome {
  status: AnswerRow["status"];
  error: AnswerError | null;
  usage?: Usage | undefined;
  model?: string | undefined;
  cached?: boolean;
}

const ACTIVE = ["queued", "streaming"] as const;
const LEASE_MS = 15_000;
const lockKey = (roomId: string) => `tutor:${roomId}`;

/**
 * Runs the rooms' queues of answers. One generation runs per room at a time across the cluster: the node that
 * holds the room's lease (Redis `SET NX PX`, renewed while it works) generates the oldest queued answer, then
 * the next. Each piece is appended to the answer log (readable from every node) before it is announced, so a
 * client that joins mid-answer reads the text so far and receives the rest. A node that dies mid-answer loses
 * its lease: the next node whose sweep finds the room stuck ends that answer as `interrupted`, keeping its
 * text, and goes on with the queue.
 */
export class TutorRunner {
  /** generations running on this node, to cancel them */
  private readonly running = new Map<string, AbortController>();
  private sweeper: NodeJS.Timeout | undefined;
  private stopping = false;

  constructor(
    private readonly d: RunnerDeps,
    private readonly events: EventEmitter<TutorEventMap>,
  ) {}

  /** Looks for work left behind (a lost queue, a dead node's answer) every `intervalMs`. */
  start(intervalMs = 5000): void {
    this.sweeper = setInterval(() => void this.sweep(), intervalMs);
    this.sweeper.unref();
  }

  /** Stops sweeping and ends this node's generations as `interrupted`, their text kept. */
  async stop(): Promise<void> {
    clearInterval(this.sweeper);
    this.stopping = true;
    for (const c of this.running.values()) c.abort();
    const deadline = Date.now() + 3000;
    while (this.running.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  }

  /** Embeds the course for hybrid retrieval now, if an embeddings model is configured (true once ready). */
  warmUp(): Promise<boolean> {
    return this.d.retriever.ready();
  }

  /** Whether this node is generating the answer now. */
  generating(answerId: string): boolean {
    return this.running.has(answerId);
  }

  /** Stops a generation if this node runs it (the others are asked through `cancelElsewhere`). */
  abort(answerId: string): void {
    this.running.get(answerId)?.abort();
  }

  /**
   * Runs the room's queue if no node does: takes the room's lease, ends what a dead node left streaming, then
   * generates the queued answers oldest first. A question queued while the lease was being given back finds it
   * taken and is picked up by the look that follows the release.
   */
  async pump(roomId: string): Promise<void> {
    if (this.stopping) return;
    let token: string | null;
    try {
      token = await this.d.locks.acquire(lockKey(roomId), LEASE_MS);
    } catch (err) {
      this.d.log.warn({ err: String(err), roomId }, "tutor lease unavailable");
      return;
    }
    if (!token) return;
    const lease = token;
    const renew = setInterval(() => {
      this.d.locks.renew(lockKey(roomId), lease, LEASE_MS).then(
        (kept) => {
          if (!kept) this.d.log.warn({ roomId }, "tutor lease lost");
        },
        (err: unknown) => this.d.log.warn({ err: String(err), roomId }, "tutor lease renewal failed"),
      );
    }, LEASE_MS / 3);
    renew.unref();
    try {
      await this.endOrphans(roomId);
      for (;;) {
        const [next] = await this.d.db
          .select({ row: answers, askerName: users.displayName })
          .from(answers)
          .innerJoin(users, eq(users.id, answers.askerId))
          .where(and(eq(answers.roomId, roomId), eq(answers.status, "queued")))
          .orderBy(asc(answers.createdAt))
          .limit(1);
        if (!next || this.stopping) break;
        await this.generate(next);
      }
    } catch (err) {
      this.d.log.error({ err, roomId }, "tutor queue failed");
    } finally {
      clearInterval(renew);
      await this.d.locks.release(lockKey(roomId), lease).catch(() => {});
    }
    const [more] = await this.d.db
      .select({ id: answers.id })
      .from(answers)
      .where(and(eq(answers.roomId, roomId), eq(answers.status, "queued")))
      .limit(1)
      .catch(() => []);
    if (more && !this.stopping) void this.pump(roomId);
  }

  /** Answers left streaming while this node holds the room's lease have lost their node: end them. */
  private async endOrphans(roomId: string): Promise<void> {
    const orphans = await this.d.db
      .select({ row: answers, askerName: users.displayName })
      .from(answers)
      .innerJoin(users, eq(users.id, answers.askerId))
      .where(and(eq(answers.roomId, roomId), eq(answers.status, "streaming")));
    for (const o of orphans) {
      if (this.running.has(o.row.id)) continue;
      const soFar = await this.d.answerLog.read(o.row.id);
      const [row] = await this.d.db
        .update(answers)
        .set({ status: "failed", error: "interrupted", text: soFar.text, deltas: soFar.seq, finishedAt: new Date() })
        .where(and(eq(answers.id, o.row.id), eq(answers.status, "streaming")))
        .returning();
      if (row) {
        this.d.log.warn({ roomId, answerId: row.id }, "tutor answer interrupted: its node stopped");
        await this.d.answerLog.finish(row.id);
        this.events.emit("done", { row, askerName: o.askerName });
      }
    }
  }

  /** Every few seconds: rooms with work that no node seems to be doing (a lost pump, a dead node). */
  private async sweep(): Promise<void> {
    try {
      const stale = await this.d.db
        .selectDistinct({ roomId: answers.roomId })
        .from(answers)
        .where(and(inArray(answers.status, [...ACTIVE]), lt(answers.createdAt, new Date(Date.now() - LEASE_MS / 5))))
        .limit(100);
      for (const { roomId } of stale) await this.pump(roomId);
    } catch (err) {
      this.d.log.warn({ err: String(err) }, "tutor sweep failed");
    }
  }

  /**
   * Generates one answer and stores how it ended. The asker's experiment variant (if one runs) may change the
   * model, the temperature and the instructions; a room with the answer cache on replays a cached answer to the
   * same question in the same context instead of asking the model again.
   */
  private async generate(queued: AnswerRecord): Promise<void> {
    const [room] = await this.d.db.select().from(rooms).where(eq(rooms.id, queued.row.roomId));
    const review = room?.tutorReview ?? false;
    const assignment = await this.d.experiments.assign(queued.row.askerId);
    const [claimed] = await this.d.db
      .update(answers)
      .set({
        status: "streaming",
        startedAt: new Date(),
        review,
        experimentId: assignment?.experimentId ?? null,
        variant: assignment?.variant.id ?? null,
      })
      .where(and(eq(answers.id, queued.row.id), eq(answers.status, "queued")))
      .returning();
    if (!claimed) return;
    const record = { row: claimed, askerName: queued.askerName };
    const controller = new AbortController();
    this.running.set(claimed.id, controller);
    const t0 = performance.now();
    let text = "";
    let seq = 0;
    let firstTokenMs: number | null = null;
    let end: Outcome = { status: "failed", error: "broken_stream" };
    let provider: Provider | undefined;
    let sources: AnswerSource[] = [];
    const piece = async (delta: string) => {
      seq += 1;
      text += delta;
      firstTokenMs ??= Math.round(performance.now() - t0);
      await this.d.answerLog.append(claimed.id, seq, delta);
      this.events.emit("delta", { delta: { roomId: claimed.roomId, answerId: claimed.id, seq, text: delta }, review });
    };
    try {
      const resolved = await this.d.models.resolve();
      provider = resolved.provider;
      const prepared = await prepareRequest(this.d, claimed, room?.language ?? "en", assignment?.variant);
      const request = prepared.request;
      request.model ??= resolved.modelsByKind[request.kind];
      sources = prepared.sources;
      this.events.emit("started", record);
      const ok: AnswerRow["status"] = review ? "held" : "done";
      const ctx = claimed.context as unknown as AskContext;
      const cacheKey =
        room?.tutorCache && !ctx.cell && !ctx.exercise
          ? answerCacheKey({
              question: claimed.question,
              language: claimed.language,
              kind: claimed.kind,
              passageIds: request.passages.map((p) => p.passage.id),
              variant: assignment ? `${assignment.experimentId}:${assignment.variant.id}` : null,
              provider: provider.name,
              model: request.model ?? provider.defaultModel,
            })
          : undefined;
      const hit = cacheKey ? await this.d.cache.get(cacheKey).catch(() => undefined) : undefined;
      if (hit) {
        // Replayed at once, in the same pieces a client expects: words with their spaces.
        for (const word of hit.text.match(/\S+\s*/g) ?? []) {
          if (controller.signal.aborted) throw new ProviderError("cancelled", "cancelled");
          await piece(word);
        }
        sources = hit.sources;
        end = { status: ok, error: null, model: hit.model ?? undefined, cached: true };
      } else {
        end = { status: ok, error: null };
        for await (const event of provider.stream(request, controller.signal)) {
          if (event.type === "done") {
            end.usage = event.usage;
            end.model = event.model;
          } else if (event.text.length > 0) await piece(event.text);
        }
        if (cacheKey && text.length > 0) {
          await this.d.cache
            .set(
              cacheKey,
              { text, sources, provider: provider.name, model: end.model ?? null },
              this.d.config.cacheTtlMs,
            )
            .catch((err: unknown) => this.d.log.warn({ err: String(err) }, "tutor answer cache unavailable"));
        }
      }
    } catch (err) {
      if (this.stopping) {
        end = { status: "failed", error: "interrupted" };
      } else if (err instanceof ProviderError) {
        end = { status: err.kind === "cancelled" ? "cancelled" : "failed", error: err.kind };
      } else {
        this.d.log.error({ err, answerId: claimed.id }, "tutor generation failed");
        end = { status: "failed", error: "broken_stream" };
      }
    }
    try {
      await this.finish(claimed, queued.askerName, { ...end, text, seq, sources, firstTokenMs, t0, provider });
    } finally {
      this.running.delete(claimed.id);
    }
  }

  /** Stores how a generation ended, counts its tokens and announces it. */
  private async finish(
    claimed: AnswerRow,
    askerName: string,
    end: Outcome & {
      text: string;
      seq: number;
      sources: AnswerSource[];
      firstTokenMs: number | null;
      t0: number;
      provider: Provider | undefined;
    },
  ): Promise<void> {
    const { usage, text, seq, sources, firstTokenMs, t0, provider } = end;
    const [row] = await this.d.db
      .update(answers)
      .set({
        status: end.status,
        error: end.error,
        text,
        deltas: seq,
        provider: provider?.name ?? null,
        model: end.model ?? provider?.defaultModel ?? null,
        sources,
        promptTokens: usage?.promptTokens ?? null,
        completionTokens: usage?.completionTokens ?? null,
        tokensEstimated: usage?.estimated ?? null,
        firstTokenMs,
        latencyMs: Math.round(performance.now() - t0),
        cached: end.cached ?? false,
        finishedAt: new Date(),
      })
      .where(eq(answers.id, claimed.id))
      .returning();
    await this.d.answerLog.finish(claimed.id).catch(() => {});
    if (usage) await this.d.limits.addTokens(claimed.askerId, usage.promptTokens + usage.completionTokens);
    if (row) this.events.emit("done", { row, askerName });
  }
}
