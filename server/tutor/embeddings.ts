import { createHash } from "node:crypto";
import { and, eq, inArray } from "drizzle-orm";
import type { Db } from "../../db/client.ts";
import { embeddings } from "../../db/schema.ts";
import type { CourseLanguage } from "../../shared/schemas/course.ts";
import { ProviderError } from "./providers/types.ts";
import type { CourseIndex, Passage, PassageHit } from "./retrieval.ts";

/** Turns texts into vectors. Vectors from one model are comparable with each other, never across models. */
export interface Embedder {
  readonly model: string;
  /** one vector per text, in the order of `texts`; throws a ProviderError on any failure */
  embed(texts: string[], signal?: AbortSignal): Promise<number[][]>;
}

export interface OpenAiEmbedderOptions {
  /** e.g. http://localhost:11434/v1 (Ollama), https://api.openai.com/v1 */
  baseUrl: string;
  apiKey?: string | undefined;
  model: string;
  /** each request, from sending it to having read its whole answer */
  timeoutMs: number;
  /** texts per request (default 64) */
  batchSize?: number;
}

interface EmbeddingsResponse {
  data?: { index?: unknown; embedding?: unknown }[];
}

/**
 * Any OpenAI-compatible embeddings endpoint (OpenAI, Ollama, vLLM, llama.cpp server): `POST /embeddings` with
 * `{ model, input: string[] }`, answered by `data[].embedding`, which are matched to the inputs by `index`
 * because servers need not keep the order. Batches go one after the other, which is kinder to rate limits.
 */
export class OpenAiEmbedder implements Embedder {
  private readonly batchSize: number;

  constructor(private readonly options: OpenAiEmbedderOptions) {
    this.batchSize = Math.max(1, options.batchSize ?? 64);
  }

  get model(): string {
    return this.options.model;
  }

  async embed(texts: string[], signal?: AbortSignal): Promise<number[][]> {
    const vectors: number[][] = [];
    for (let i = 0; i < texts.length; i += this.batchSize) {
      vectors.push(...(await this.request(texts.slice(i, i + this.batchSize), signal)));
    }
    return vectors;
  }

  private async request(input: string[], signal: AbortSignal | undefined): Promise<number[][]> {
    const { baseUrl, apiKey, model, timeoutMs } = this.options;
    const timer = new AbortController();
    const timeout = setTimeout(() => timer.abort(), timeoutMs);
    const abort = signal ? AbortSignal.any([signal, timer.signal]) : timer.signal;
    const fail = (err: unknown, otherwise: () => ProviderError): ProviderError => {
      if (err instanceof ProviderError) return err;
      if (signal?.aborted) return new ProviderError("cancelled", "cancelled");
      if (timer.signal.aborted) return new ProviderError("timeout", `the embeddings took longer than ${timeoutMs} ms`);
      return otherwise();
    };
    try {
      let res: Response;
      try {
        res = await fetch(`${baseUrl.replace(/\/+$/, "")}/embeddings`, {
          method: "POST",
          headers: { "content-type": "application/json", ...(apiKey ? { authorization: `Bearer ${apiKey}` } : {}) },
          body: JSON.stringify({ model, input }),
          signal: abort,
        });
      } catch (err) {
        throw fail(
          err,
          () => new ProviderError("refused", `the embeddings could not be reached: ${(err as Error).message}`),
        );
      }
      if (res.status === 429) {
        const retry = Number(res.headers.get("retry-after"));
        await res.body?.cancel();
        throw new ProviderError(
          "rate_limited",
          "the embeddings are rate limited",
          Number.isFinite(retry) && retry > 0 ? retry : undefined,
        );
      }
      if (!res.ok) {
        const detail = (await res.text().catch(() => "")).slice(0, 200);
        throw new ProviderError("refused", `the embeddings answered ${res.status}${detail ? `: ${detail}` : ""}`);
      }
      let body: EmbeddingsResponse;
      try {
        body = (await res.json()) as EmbeddingsResponse;
      } catch (err) {
        throw fail(err, () => new ProviderError("broken_stream", "the embeddings answer is not JSON"));
      }
      return readVectors(body, input.length);
    } finally {
      clearTimeout(timeout);
      // Whatever happened, the request is closed.
      timer.abort();
    }
  }
}

/** The vectors of an embeddings answer in input order, or a `broken_stream` error if any is missing or malformed. */
function readVectors(body: EmbeddingsResponse, count: number): number[][] {
  const vectors: (number[] | undefined)[] = new Array(count);
  for (const item of Array.isArray(body?.data) ? body.data : []) {
    const { index, embedding } = item ?? {};
    if (typeof index !== "number" || !Number.isInteger(index) || index < 0 || index >= count) continue;
    if (!Array.isArray(embedding) || embedding.length === 0 || !embedding.every(Number.isFinite)) continue;
    vectors[index] = embedding as number[];
  }
  const missing = [...vectors.keys()].filter((i) => !vectors[i]).length;
  if (missing > 0) {
    throw new ProviderError("broken_stream", `the embeddings answer lacks ${missing} of ${count} vectors`);
  }
  return vectors as number[][];
}

/** sha256 hex of a text: the cache key, together with the model. */
export const contentHash = (text: string): string => createHash("sha256").update(text).digest("hex");

/**
 * Vectors stored by (model, sha256 of the text), so that no text is embedded twice by the same model, across
 * restarts and nodes. Two nodes embedding the same text at once both store it; the second insert is ignored.
 */
export class EmbeddingCache {
  constructor(private readonly db: Db) {}

  /** The vectors of `texts` in input order: cached ones read in one query, the missing distinct texts embedded. */
  async embedAll(embedder: Embedder, texts: string[]): Promise<number[][]> {
    if (texts.length === 0) return [];
    const hashes = texts.map(contentHash);
    const distinct = [...new Set(hashes)];
    const rows = await this.db
      .select({ hash: embeddings.hash, vector: embeddings.vector })
      .from(embeddings)
      .where(and(eq(embeddings.model, embedder.model), inArray(embeddings.hash, distinct)));
    // The column is real (float4), printed by the server as the shortest decimal that reads back as the same
    // float4: rounding both read and fresh vectors to float4 makes a first run and a cached run return the same
    // numbers.
    const known = new Map(rows.map((r) => [r.hash, r.vector.map(Math.fround)]));

    const missing = new Map<string, string>();
    hashes.forEach((hash, i) => {
      if (!known.has(hash) && !missing.has(hash)) missing.set(hash, texts[i] as string);
    });
    if (missing.size > 0) {
      const fresh = await embedder.embed([...missing.values()]);
      const stored = [...missing.keys()].map((hash, i) => ({
        model: embedder.model,
        hash,
        vector: (fresh[i] as number[]).map(Math.fround),
      }));
      await this.db.insert(embeddings).values(stored).onConflictDoNothing();
      for (const row of stored) known.set(row.hash, row.vector);
    }
    return hashes.map((hash) => known.get(hash) as number[]);
  }
}

/** Reciprocal rank fusion constant: ranks far down either list still count, but the top of each dominates. */
const RRF_K = 60;
/** How deep each ranking goes into the fusion. */
const DEPTH = 50;

interface Embedded {
  passage: Passage;
  vector: Float32Array;
  norm: number;
}

/**
 * Course retrieval that fuses the full-text ranking with the embeddings' cosine ranking (reciprocal rank fusion),
 * so that a question phrased in other words than the course still finds its passages. When the query cannot be
 * embedded, it answers with the full-text ranking alone.
 */
export class HybridRetriever {
  /** why the last `passages()` fell back to full text alone, or null when it did not */
  lastFallback: Error | null = null;

  private constructor(
    private readonly index: CourseIndex,
    private readonly embedder: Embedder,
    private readonly byLanguage: Record<CourseLanguage, Embedded[]>,
  ) {}

  /** Embeds every passage (its heading and text) through the cache: only texts never embedded by this model cost a call. */
  static async build(
    index: CourseIndex,
    passages: Passage[],
    embedder: Embedder,
    cache: EmbeddingCache,
  ): Promise<HybridRetriever> {
    const vectors = await cache.embedAll(embedder, passages.map(passageText));
    const byLanguage: Record<CourseLanguage, Embedded[]> = { en: [], fr: [] };
    passages.forEach((passage, i) => {
      const vector = Float32Array.from(vectors[i] as number[]);
      byLanguage[passage.language].push({ passage, vector, norm: norm(vector) });
    });
    return new HybridRetriever(index, embedder, byLanguage);
  }

  /** The passages of `language` that best match `query`, best first; `score` is the fused score. */
  async passages(query: string, language: CourseLanguage, limit = 10): Promise<PassageHit[]> {
    const fullText = this.index.passages(query, language, DEPTH);
    let queryVector: number[] | undefined;
    try {
      // Providers reject empty inputs; such a query has no meaning to embed anyway.
      if (query.trim()) queryVector = (await this.embedder.embed([query]))[0];
      this.lastFallback = null;
    } catch (err) {
      this.lastFallback = err instanceof Error ? err : new Error(String(err));
      return fullText.slice(0, limit);
    }
    const semantic = queryVector ? this.cosineRanking(queryVector, language) : [];

    const fused = new Map<string, PassageHit>();
    for (const ranking of [fullText, semantic]) {
      ranking.forEach((hit, rank) => {
        const entry = fused.get(hit.passage.id) ?? { passage: hit.passage, score: 0 };
        entry.score += 1 / (RRF_K + rank + 1);
        fused.set(hit.passage.id, entry);
      });
    }
    // Sorting is stable: equal scores keep the full-text order.
    return [...fused.values()].sort((a, b) => b.score - a.score).slice(0, limit);
  }

  private cosineRanking(query: number[], language: CourseLanguage): PassageHit[] {
    const q = Float32Array.from(query);
    const qNorm = norm(q);
    if (qNorm === 0) return [];
    const hits: PassageHit[] = [];
    for (const { passage, vector, norm: n } of this.byLanguage[language]) {
      if (n === 0 || vector.length !== q.length) continue;
      let dot = 0;
      for (let i = 0; i < q.length; i++) dot += (q[i] as number) * (vector[i] as number);
      const score = dot / (qNorm * n);
      // Nothing in common is no evidence: it must not rank a passage against the full-text ranking.
      if (score > 0) hits.push({ passage, score });
    }
    return hits.sort((a, b) => b.score - a.score).slice(0, DEPTH);
  }
}

/** What is embedded for a passage: its heading says what the text is about. */
export const passageText = (p: Passage): string => `${p.heading}\n\n${p.text}`;

function norm(v: Float32Array): number {
  let sum = 0;
  for (const x of v) sum += x * x;
  return Math.sqrt(sum);
}
