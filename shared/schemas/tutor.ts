import { z } from "zod";
import { LIMITS } from "../limits.ts";
import { Limit } from "./common.ts";
import { Language } from "./rooms.ts";

export const ANSWER_STATUSES = ["queued", "streaming", "held", "done", "failed", "cancelled", "rejected"] as const;
export const AnswerStatus = z.enum(ANSWER_STATUSES);
export type AnswerStatus = z.infer<typeof AnswerStatus>;
/** Statuses an answer does not leave. */
export const FINAL_STATUSES: readonly AnswerStatus[] = ["done", "failed", "cancelled", "rejected"];

export const QUESTION_KINDS = ["concept", "debugging", "code_review", "exercise_help"] as const;
export const QuestionKindName = z.enum(QUESTION_KINDS);
export type QuestionKind = z.infer<typeof QuestionKindName>;
export const LEARNER_LEVELS = ["beginner", "intermediate", "advanced"] as const;
export const LearnerLevelName = z.enum(LEARNER_LEVELS);

/** Why an answer ended early: what the model did, or `interrupted` when the node generating it died. */
export const AnswerError = z.enum(["refused", "timeout", "broken_stream", "rate_limited", "cancelled", "interrupted"]);
export type AnswerError = z.infer<typeof AnswerError>;

export const AnswerSource = z.object({ lessonId: z.string(), title: z.string() });
export type AnswerSource = z.infer<typeof AnswerSource>;

export const Answer = z
  .object({
    id: z.uuid(),
    roomId: z.uuid(),
    askerId: z.uuid(),
    askerName: z.string(),
    question: z.string(),
    status: AnswerStatus,
    /**
     * the answer's text: complete once `done`, what was generated before the end when `failed` or
     * `cancelled`, the text so far while `streaming`. Empty for members other than moderators while `held`
     * or once `rejected`
     */
    text: z.string(),
    /** the number of `tutor:delta` pieces `text` is made of (the `seq` of the last one) */
    deltas: z.number().int(),
    error: AnswerError.nullable(),
    kind: QuestionKindName,
    language: Language,
    /** `offline` or the model's name */
    model: z.string().nullable(),
    /** the experiment variant that produced it */
    variant: z.string().nullable(),
    /** the lessons the answer drew on */
    sources: z.array(AnswerSource),
    usage: z
      .object({ promptTokens: z.number().int(), completionTokens: z.number().int(), estimated: z.boolean() })
      .nullable(),
    /** from the start of the generation to its first piece and to its end */
    firstTokenMs: z.number().int().nullable(),
    latencyMs: z.number().int().nullable(),
    /** served from the answer cache */
    cached: z.boolean(),
    createdAt: z.iso.datetime(),
    finishedAt: z.iso.datetime().nullable(),
  })
  .meta({ id: "Answer" });
export type Answer = z.infer<typeof Answer>;

export const AnswerPage = z
  .object({ items: z.array(Answer), nextBefore: z.iso.datetime().nullable() })
  .meta({ id: "AnswerPage" });
export type AnswerPage = z.infer<typeof AnswerPage>;

export const AnswerListQuery = z
  .object({
    /** cursor: answers created before this instant (newest first) */
    before: z.iso.datetime().optional(),
    limit: Limit,
  })
  .strict();

const id = z.uuid().toLowerCase();
const noNul = (v: string) => !v.includes("\u0000");
const NUL = "must not contain U+0000";
const code = z.string().max(LIMITS.tutorCodeMax).refine(noNul, NUL);

/** `tutor:ask`: a question to the tutor in a room, with what helps it answer at the learner's level. */
export const TutorAskPayload = z
  .object({
    roomId: id,
    question: z.string().trim().min(1).max(LIMITS.questionMax).refine(noNul, NUL),
    level: LearnerLevelName.default("beginner"),
    /** the notebook cell the learner points at */
    cell: code.optional(),
    /** an exercise of the course the learner is working on, with their attempts (oldest first) */
    exercise: z
      .object({
        lessonId: z.string().regex(/^[a-z0-9-]{1,64}$/),
        exerciseId: z.string().regex(/^[a-z0-9-]{1,64}$/),
        attempts: z.array(code).max(LIMITS.tutorAttemptsMax).default([]),
        /** hints of this exercise the learner has already been given */
        hintsSeen: z.number().int().min(0).max(20).default(0),
      })
      .strict()
      .optional(),
  })
  .strict();
export type TutorAskPayload = z.infer<typeof TutorAskPayload>;

/** `tutor:cancel` and `tutor:get` */
export const TutorAnswerPayload = z.object({ roomId: id, answerId: id }).strict();
export type TutorAnswerPayload = z.infer<typeof TutorAnswerPayload>;

/** `tutor:review`: a moderator releases a held answer to the room, or rejects it. */
export const TutorReviewPayload = z.object({ roomId: id, answerId: id, approve: z.boolean() }).strict();
export type TutorReviewPayload = z.infer<typeof TutorReviewPayload>;

/** One streamed piece of an answer. `seq` runs 1, 2, 3, ... per answer, without gaps. */
export interface TutorDelta {
  roomId: string;
  answerId: string;
  seq: number;
  text: string;
}

// --- Learning from use ----------------------------------------------------------------------------------------

export const FeedbackBody = z
  .object({
    rating: z.enum(["up", "down"]),
    comment: z.string().trim().max(LIMITS.feedbackCommentMax).refine(noNul, NUL).optional(),
  })
  .strict()
  .meta({ id: "FeedbackBody" });
export type FeedbackBody = z.infer<typeof FeedbackBody>;

export const Feedback = z
  .object({
    answerId: z.uuid(),
    rating: z.enum(["up", "down"]),
    comment: z.string().nullable(),
    updatedAt: z.iso.datetime(),
  })
  .meta({ id: "Feedback" });
export type Feedback = z.infer<typeof Feedback>;

export const AnswerParams = z.object({ id: z.uuid(), answerId: z.uuid() });

const variantId = z.string().regex(/^[a-z0-9][a-z0-9_-]{0,31}$/, "lower-case letters, digits, - and _");
export const ExperimentVariant = z
  .object({
    id: variantId,
    /** its share of the users, relative to the other variants' weights */
    weight: z.number().int().min(1).max(1000),
    /** added to the system prompt */
    instructions: z.string().max(4000).refine(noNul, NUL).optional(),
    /** the model to ask instead of the configured one */
    model: z.string().min(1).max(200).optional(),
    temperature: z.number().min(0).max(2).optional(),
  })
  .strict()
  .meta({ id: "ExperimentVariant" });
export type ExperimentVariant = z.infer<typeof ExperimentVariant>;

export const ExperimentCreate = z
  .object({
    name: z.string().trim().min(1).max(100),
    description: z.string().trim().max(1000).default(""),
    variants: z
      .array(ExperimentVariant)
      .min(2)
      .max(10)
      .refine((vs) => new Set(vs.map((v) => v.id)).size === vs.length, "variant ids must be distinct"),
  })
  .strict()
  .meta({ id: "ExperimentCreate" });
export type ExperimentCreate = z.infer<typeof ExperimentCreate>;

export const Experiment = z
  .object({
    id: z.uuid(),
    name: z.string(),
    description: z.string(),
    variants: z.array(ExperimentVariant),
    status: z.enum(["running", "stopped"]),
    createdAt: z.iso.datetime(),
    stoppedAt: z.iso.datetime().nullable(),
  })
  .meta({ id: "Experiment" });
export type Experiment = z.infer<typeof Experiment>;
export const ExperimentList = z.object({ items: z.array(Experiment) }).meta({ id: "ExperimentList" });

export const VariantResult = z.object({
  variant: z.string(),
  /** finished answers (done) generated under this variant */
  answers: z.number().int(),
  ratings: z.number().int(),
  up: z.number().int(),
  /** share of thumbs up among the ratings, with its 95% Wilson score interval (null without ratings) */
  positiveRate: z.number().nullable(),
  positiveRateCi: z.tuple([z.number(), z.number()]).nullable(),
  latencyMsMean: z.number().nullable(),
  latencyMsP50: z.number().nullable(),
  tokensMean: z.number().nullable(),
});
export type VariantResult = z.infer<typeof VariantResult>;
export const ExperimentResults = z
  .object({ experiment: Experiment, variants: z.array(VariantResult) })
  .meta({ id: "ExperimentResults" });
export type ExperimentResults = z.infer<typeof ExperimentResults>;

/** The tutor's model as an admin sees it (never the API key itself). */
export const TutorModelSettings = z
  .object({
    /** where the settings come from: the environment, an admin's change, or neither (the offline tutor) */
    source: z.enum(["env", "admin", "offline"]),
    provider: z.enum(["openai", "offline"]),
    baseUrl: z.string().nullable(),
    model: z.string().nullable(),
    apiKeySet: z.boolean(),
    /** a model per kind of question, instead of `model` */
    modelsByKind: z.partialRecord(QuestionKindName, z.string()),
  })
  .meta({ id: "TutorModelSettings" });
export type TutorModelSettings = z.infer<typeof TutorModelSettings>;

export const TutorModelUpdate = z
  .discriminatedUnion("provider", [
    z.object({ provider: z.literal("offline") }).strict(),
    z
      .object({
        provider: z.literal("openai"),
        baseUrl: z.url().refine((u) => /^https?:\/\//.test(u), "must start with http:// or https://"),
        model: z.string().trim().min(1).max(200),
        /** write-only; omitted: keep the stored key */
        apiKey: z.string().min(1).max(500).optional(),
        modelsByKind: z.partialRecord(QuestionKindName, z.string().trim().min(1).max(200)).default({}),
      })
      .strict(),
  ])
  .meta({ id: "TutorModelUpdate" });
export type TutorModelUpdate = z.infer<typeof TutorModelUpdate>;

export const ExportQuery = z
  .object({
    /** at least this many more thumbs up than down */
    minScore: z.coerce.number().int().min(1).max(100).default(1),
    /** include the offline tutor's answers (off: only a model's) */
    includeOffline: z
      .enum(["true", "false"])
      .default("false")
      .transform((v) => v === "true"),
  })
  .strict();
