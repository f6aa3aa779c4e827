import type { CourseLanguage } from "../../../shared/schemas/course.ts";
import type { ExerciseContext, LearnerLevel } from "../prompts.ts";
import type { PassageHit } from "../retrieval.ts";

/** What a question is about: each kind has its own prompt (and may have its own model). */
export type QuestionKind = "concept" | "debugging" | "code_review" | "exercise_help";

export interface ChatTurn {
  role: "system" | "user" | "assistant";
  content: string;
}

/** One generation. LLM providers read `messages`; the offline tutor composes its answer from the rest. */
export interface GenerateRequest {
  messages: ChatTurn[];
  question: string;
  language: CourseLanguage;
  kind: QuestionKind;
  level: LearnerLevel;
  /** retrieved course passages, best first */
  passages: PassageHit[];
  /** the exercise asked about, with the learner's attempts and the next hint */
  exercise?: ExerciseContext | undefined;
  model?: string;
  temperature?: number;
  maxTokens: number;
}

export interface Usage {
  promptTokens: number;
  completionTokens: number;
  /** true when the provider did not report usage and the counts were estimated from the text */
  estimated: boolean;
}

export type StreamEvent = { type: "delta"; text: string } | { type: "done"; usage: Usage; model: string };

/** Why a generation ended early. The partial text already streamed is kept by the caller. */
export type ProviderErrorKind = "refused" | "timeout" | "broken_stream" | "rate_limited" | "cancelled";

export class ProviderError extends Error {
  constructor(
    readonly kind: ProviderErrorKind,
    message: string,
    /** seconds, for `rate_limited` when the provider said */
    readonly retryAfterSec?: number,
  ) {
    super(message);
    this.name = "ProviderError";
  }
}

/**
 * A source of tutor answers. `stream` yields text deltas and ends with one `done` event; it throws a
 * ProviderError on any failure (including `cancelled` when `signal` aborts) and never leaves a request open
 * after it returns or throws.
 */
export interface Provider {
  readonly name: "openai" | "offline";
  /** the model used when a request names none */
  readonly defaultModel: string;
  stream(request: GenerateRequest, signal: AbortSignal): AsyncIterable<StreamEvent>;
}

/** About four characters per token for English and French prose: only for providers that report no usage. */
export const estimateTokens = (text: string) => Math.max(1, Math.ceil(text.length / 4));

/** The same estimate for a whole prompt. */
export const estimatePromptTokens = (messages: ChatTurn[]) => estimateTokens(messages.map((m) => m.content).join(""));
