import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { resolve } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { type DbHandle, openDb } from "../../db/client.ts";
import { type Course, loadCourse, loadLabelledQuestions } from "../../server/tutor/course.ts";
import {
  EmbeddingCache,
  HybridRetriever,
  OpenAiEmbedder,
  type OpenAiEmbedderOptions,
  passageText,
} from "../../server/tutor/embeddings.ts";
import { ProviderError } from "../../server/tutor/providers/types.ts";
import {
  CourseIndex,
  chunkCourse,
  groupByLesson,
  type Passage,
  type PassageHit,
} from "../../server/tutor/retrieval.ts";
import type { LabelledQuestion } from "../../shared/schemas/course.ts";
import { type FakeLlm, fakeEmbedding, startFakeLlm } from "../helpers/fake-llm.ts";
import { createTestDatabase, TEST_DATABASE_URL } from "../helpers/postgres.ts";

const CONTENT = resolve(import.meta.dirname, "../../content");
const languages = ["en", "fr"] as const;

let llm: FakeLlm;
let course: Course;
let questions: LabelledQuestion[];
let index: CourseIndex;
let passages: Passage[];
const opened: { dbh: DbHandle; drop?: () => Promise<void> }[] = [];

/** A fresh database: in-memory PGlite, or a PostgreSQL database of its own when TEST_DATABASE_URL is set. */
async function freshDb(): Promise<DbHandle> {
  const created = TEST_DATABASE_URL ? await createTestDatabase(TEST_DATABASE_URL) : undefined;
  const dbh = await openDb({ dataDir: "memory", databaseUrl: created?.url });
  opened.push({ dbh, ...(created ? { drop: created.drop } : {}) });
  return dbh;
}

const embedder = (over: Partial<OpenAiEmbedderOptions> = {}) =>
  new OpenAiEmbedder({ baseUrl: llm.url, apiKey: "sk-test", model: "embed-small", timeoutMs: 5000, ...over });

beforeAll(async () => {
  llm = await startFakeLlm();
  course = await loadCourse(CONTENT);
  questions = await loadLabelledQuestions(CONTENT);
  index = CourseIndex.build(course);
  passages = chunkCourse(course);
});
afterEach(() => {
  llm.embeddingsStatus = undefined;
  llm.embeddingsRetryAfter = undefined;
  llm.embeddingsDelayMs = 0;
});
afterAll(async () => {
  for (const { dbh, drop } of opened) {
    await dbh.close();
    await drop?.();
  }
  await llm.close();
});

const pct = (x: number) => `${(100 * x).toFixed(1)}%`;

/** The top 3 lessons of a passage ranking, grouped the way `CourseIndex.lessons` groups its own. */
const top3 = (hits: PassageHit[]) => groupByLesson(hits, 3).map((l) => l.lessonId);

describe("hybrid retrieval on the labelled questions", () => {
  it("finds the labelled lesson in the top 3 lessons for at least 90% of the questions", async () => {
    const retriever = await HybridRetriever.build(
      index,
      passages,
      embedder(),
      new EmbeddingCache((await freshDb()).db),
    );
    const results: { q: LabelledQuestion; hybrid: string[]; fullText: string[] }[] = [];
    for (const q of questions) {
      const hybrid = top3(await retriever.passages(q.question, q.language, 50));
      expect(retriever.lastFallback).toBeNull();
      const fullText = index.lessons(q.question, q.language, 3).map((l) => l.lessonId);
      results.push({ q, hybrid, fullText });
    }
    const rate = (rs: typeof results, pick: "hybrid" | "fullText") =>
      rs.filter((r) => r[pick].includes(r.q.lesson)).length / rs.length;
    const rows = [...languages, "all"].map((language) => {
      const rs = results.filter((r) => language === "all" || r.q.language === language);
      return { language, n: rs.length, hybrid: rate(rs, "hybrid"), fullText: rate(rs, "fullText") };
    });
    const misses = results
      .filter((r) => !r.hybrid.includes(r.q.lesson))
      .map((r) => `[${r.q.language}] ${r.q.question}\n  expected ${r.q.lesson}, got ${r.hybrid.join(", ")}`);
    console.log(
      rows
        .map(
          (r) =>
            `embeddings: ${r.language}: ${r.n} questions, top-3 hybrid ${pct(r.hybrid)}, full-text ${pct(r.fullText)}`,
        )
        .join("\n"),
      misses.length ? `\nhybrid top-3 misses:\n${misses.join("\n")}` : "",
    );
    // The fake's vectors are a bag of hashed words, a much weaker ranking than a real model's: this figure guards
    // the fusion and its plumbing, it says nothing of what a real embedding model adds.
    const all = rows.find((r) => r.language === "all");
    expect(all?.n).toBe(questions.length);
    expect(all?.hybrid, `misses:\n${misses.join("\n")}`).toBeGreaterThanOrEqual(0.9);
  });
});

describe("the embedding cache", () => {
  const distinct = (ps: Passage[]) => new Set(ps.map(passageText)).size;

  it("embeds each passage once per model, and after an edit only the edited passage", async () => {
    const cache = new EmbeddingCache((await freshDb()).db);
    const query = "how do I loop over the keys and values of a dictionary";

    llm.embedded.length = 0;
    const first = await HybridRetriever.build(index, passages, embedder(), cache);
    expect(llm.embedded.length).toBe(distinct(passages));

    llm.embedded.length = 0;
    const second = await HybridRetriever.build(index, passages, embedder(), cache);
    expect(llm.embedded).toEqual([]);
    // Vectors read back from the database rank exactly as freshly embedded ones.
    expect(await second.passages(query, "en")).toEqual(await first.passages(query, "en"));

    const edited = passages.map((p, i) => (i === 7 ? { ...p, text: `${p.text}\n\nOne more sentence.` } : p));
    llm.embedded.length = 0;
    await HybridRetriever.build(index, edited, embedder(), cache);
    expect(llm.embedded).toEqual([passageText(edited[7] as Passage)]);

    llm.embedded.length = 0;
    await HybridRetriever.build(index, passages, embedder({ model: "embed-large" }), cache);
    expect(llm.embedded.length).toBe(distinct(passages));
  });

  it("returns vectors in input order, embedding a repeated text once", async () => {
    const cache = new EmbeddingCache((await freshDb()).db);
    llm.embedded.length = 0;
    const texts = ["a list is ordered", "a set has no duplicates", "a list is ordered"];
    const vectors = await cache.embedAll(embedder(), texts);
    expect(llm.embedded).toEqual(["a list is ordered", "a set has no duplicates"]);
    expect(vectors.map((v) => v.map((x) => x.toFixed(5)))).toEqual(
      texts.map((t) => fakeEmbedding(t).map((x) => x.toFixed(5))),
    );
    expect(await cache.embedAll(embedder(), [])).toEqual([]);
  });
});

describe("when the query cannot be embedded", () => {
  it("answers with the full-text ranking alone", async () => {
    const retriever = await HybridRetriever.build(
      index,
      passages,
      embedder(),
      new EmbeddingCache((await freshDb()).db),
    );
    const query = "comment parcourir un dictionnaire";
    llm.embeddingsStatus = 500;
    const hits = await retriever.passages(query, "fr", 8);
    expect(retriever.lastFallback).toBeInstanceOf(ProviderError);
    expect((retriever.lastFallback as ProviderError).kind).toBe("refused");
    expect(hits.map((h) => h.passage.id)).toEqual(index.passages(query, "fr", 8).map((h) => h.passage.id));

    llm.embeddingsStatus = undefined;
    const fused = await retriever.passages(query, "fr", 8);
    expect(retriever.lastFallback).toBeNull();
    expect(fused.length).toBe(8);
    expect(fused.every((h) => h.passage.language === "fr")).toBe(true);
    expect(fused.map((h) => h.score)).toEqual([...fused.map((h) => h.score)].sort((a, b) => b - a));
  });
});

describe("the OpenAI-compatible embedder", () => {
  const failure = async (e: OpenAiEmbedder) => {
    const err = await e.embed(["what is a list"]).catch((x: unknown) => x);
    expect(err).toBeInstanceOf(ProviderError);
    return err as ProviderError;
  };

  it("sends batches of batchSize and matches vectors to inputs by index", async () => {
    const before = llm.embeddingRequests;
    const texts = ["one", "two words", "three little words", "four", "five"];
    const vectors = await embedder({ batchSize: 2 }).embed(texts);
    expect(llm.embeddingRequests - before).toBe(3);
    expect(vectors).toEqual(texts.map(fakeEmbedding));
  });

  it("reports 429 as rate_limited, with the retry delay", async () => {
    llm.embeddingsStatus = 429;
    llm.embeddingsRetryAfter = 7;
    const err = await failure(embedder());
    expect(err.kind).toBe("rate_limited");
    expect(err.retryAfterSec).toBe(7);
  });

  it("reports 500 and 400 as refused", async () => {
    for (const status of [500, 400]) {
      llm.embeddingsStatus = status;
      const err = await failure(embedder());
      expect(err.kind).toBe("refused");
      expect(err.message).toContain(String(status));
    }
  });

  it("reports an unreachable server as refused", async () => {
    const closed = createServer();
    await new Promise<void>((r) => closed.listen(0, "127.0.0.1", r));
    const port = (closed.address() as AddressInfo).port;
    await new Promise((r) => closed.close(r));
    expect((await failure(embedder({ baseUrl: `http://127.0.0.1:${port}/v1` }))).kind).toBe("refused");
  });

  it("reports a slow server as timeout", async () => {
    llm.embeddingsDelayMs = 1000;
    const start = performance.now();
    expect((await failure(embedder({ timeoutMs: 150 }))).kind).toBe("timeout");
    expect(performance.now() - start).toBeLessThan(900);
  });
});
