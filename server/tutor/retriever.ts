import type { CourseLanguage } from "../../shared/schemas/course.ts";
import type { Logger } from "../log.ts";
import type { CourseService } from "./course-service.ts";
import { type Embedder, type EmbeddingCache, HybridRetriever } from "./embeddings.ts";
import { chunkCourse, type PassageHit } from "./retrieval.ts";

/** How long to wait before trying again to embed the course after a failure. */
const RETRY_MS = 5 * 60_000;

/**
 * The tutor's retrieval: full-text over the course, made hybrid (full-text and embeddings, fused by rank) once
 * the course's passages are embedded, when an embeddings model is configured. The passages are embedded in the
 * background on first use, through the cache (by content hash and model: a restart or another node embeds
 * nothing again); until then, and whenever embedding fails, retrieval is full-text only.
 */
export class TutorRetriever {
  private hybrid: HybridRetriever | undefined;
  private building: Promise<void> | undefined;
  private failedAt = 0;

  constructor(
    private readonly course: CourseService,
    private readonly log: Logger,
    private readonly embeddings?: { embedder: Embedder; cache: EmbeddingCache } | undefined,
  ) {}

  async passages(query: string, language: CourseLanguage, limit: number): Promise<PassageHit[]> {
    const { index } = await this.course.load();
    if (this.hybrid) return this.hybrid.passages(query, language, limit);
    this.startBuilding();
    return index.passages(query, language, limit);
  }

  /** Embeds the course now (tests and warm-up); resolves when hybrid retrieval is ready or has failed. */
  async ready(): Promise<boolean> {
    this.startBuilding(true);
    await this.building;
    return this.hybrid !== undefined;
  }

  private startBuilding(force = false): void {
    const emb = this.embeddings;
    if (!emb || this.building || (!force && Date.now() - this.failedAt < RETRY_MS)) return;
    this.building = (async () => {
      try {
        const { course, index } = await this.course.load();
        this.hybrid = await HybridRetriever.build(index, chunkCourse(course), emb.embedder, emb.cache);
        this.log.info({ model: emb.embedder.model }, "course embedded: retrieval is hybrid");
      } catch (err) {
        this.failedAt = Date.now();
        this.log.warn({ err: String(err) }, "embedding the course failed: retrieval stays full-text");
      } finally {
        this.building = undefined;
      }
    })();
  }
}
