import type { answers } from "../../db/schema.ts";
import type { Answer, AnswerError, TutorAskPayload, TutorDelta } from "../../shared/schemas/tutor.ts";

export type AnswerRow = typeof answers.$inferSelect;

/** The row and its asker's name: what every view of an answer is made from. */
export interface AnswerRecord {
  row: AnswerRow;
  askerName: string;
}

/** What the client sent with its question, kept with the answer for the generation (on whichever node). */
export interface AskContext {
  level: TutorAskPayload["level"];
  cell?: string | undefined;
  exercise?: TutorAskPayload["exercise"];
}

/**
 * An answer as a member sees it. A held answer (teacher review) and a rejected one show no text to anyone but
 * the room's owners and moderators; `soFar` replaces the stored text of an answer still streaming.
 */
export function toAnswer(
  { row, askerName }: AnswerRecord,
  manager: boolean,
  soFar?: { text: string; seq: number },
): Answer {
  const hidden = !manager && row.review && (row.status === "held" || row.status === "rejected" || !row.finishedAt);
  const text = soFar ? soFar.text : row.text;
  return {
    id: row.id,
    roomId: row.roomId,
    askerId: row.askerId,
    askerName,
    question: row.question,
    status: row.status,
    text: hidden ? "" : text,
    deltas: hidden ? 0 : soFar ? soFar.seq : row.deltas,
    error: (row.error as AnswerError | null) ?? null,
    kind: row.kind as Answer["kind"],
    language: row.language,
    model: row.model,
    variant: row.variant,
    sources: row.sources,
    usage:
      row.promptTokens === null || row.completionTokens === null
        ? null
        : {
            promptTokens: row.promptTokens,
            completionTokens: row.completionTokens,
            estimated: row.tokensEstimated ?? true,
          },
    firstTokenMs: row.firstTokenMs,
    latencyMs: row.latencyMs,
    cached: row.cached,
    createdAt: row.createdAt.toISOString(),
    finishedAt: row.finishedAt?.toISOString() ?? null,
  };
}

/** What the tutor announces on this node; the realtime layer sends it to the room on every node. */
export interface TutorEventMap {
  /** a question was asked: its answer waits in the room's queue */
  queued: [AnswerRecord];
  /** the generation of an answer began */
  started: [AnswerRecord];
  /** one more piece of an answer; `review`: only the room's managers see it */
  delta: [{ delta: TutorDelta; review: boolean }];
  /** the answer reached its end (done, held, failed, cancelled) */
  done: [AnswerRecord];
  /** a moderator released or rejected a held answer */
  reviewed: [AnswerRecord];
}
