import { createHash } from "node:crypto";
import { and, desc, eq, sql } from "drizzle-orm";
import type { Db } from "../../db/client.ts";
import { answerFeedback, answers, type ExperimentVariantRow, experiments } from "../../db/schema.ts";
import type {
  Experiment,
  ExperimentCreate,
  ExperimentResults,
  ExperimentVariant,
  VariantResult,
} from "../../shared/schemas/tutor.ts";
import { conflict, notFound } from "../errors.ts";

type ExperimentRow = typeof experiments.$inferSelect;

/** The variant a user is in, for the running experiment. */
export interface Assignment {
  experimentId: string;
  variant: ExperimentVariantRow;
}

/**
 * The Wilson score interval of a proportion (`successes` of `n`) at `z` (1.96: 95%). Unlike the normal
 * approximation it stays inside [0, 1] and behaves with few ratings or rates near 0 and 1.
 */
export function wilson(successes: number, n: number, z = 1.96): [number, number] {
  if (n === 0) return [0, 1];
  const p = successes / n;
  const z2 = z * z;
  const centre = (p + z2 / (2 * n)) / (1 + z2 / n);
  const half = (z / (1 + z2 / n)) * Math.sqrt((p * (1 - p)) / n + z2 / (4 * n * n));
  return [Math.max(0, centre - half), Math.min(1, centre + half)];
}

/**
 * Where `userId` falls in `experimentId`: a number in [0, 1) from SHA-256 of both ids, so the same user gets
 * the same variant on every node and every time, and the users of two experiments are shuffled independently.
 */
export function bucket(experimentId: string, userId: string): number {
  const digest = createHash("sha256").update(`${experimentId}:${userId}`).digest();
  return digest.readUInt32BE(0) / 2 ** 32;
}

/** The variant of `bucket` for variants weighted as given. */
export function pickVariant<V extends { weight: number }>(variants: readonly V[], at: number): V {
  const total = variants.reduce((n, v) => n + v.weight, 0);
  let edge = 0;
  for (const v of variants) {
    edge += v.weight / total;
    if (at < edge) return v;
  }
  return variants.at(-1) as V;
}

const toExperiment = (row: ExperimentRow): Experiment => ({
  id: row.id,
  name: row.name,
  description: row.description,
  variants: row.variants as ExperimentVariant[],
  status: row.status,
  createdAt: row.createdAt.toISOString(),
  stoppedAt: row.stoppedAt?.toISOString() ?? null,
});

/**
 * A/B tests of the tutor. One experiment runs at a time; every answer generated meanwhile records its
 * experiment and variant, and the results compare the variants on answers, ratings, latency and tokens.
 */
export class ExperimentService {
  private running: { at: number; value: Promise<ExperimentRow | undefined> } | undefined;

  constructor(
    private readonly db: Db,
    /** how long the running experiment is served from memory (a change on another node shows after this) */
    private readonly cacheMs = 5000,
  ) {}

  async create(input: ExperimentCreate, createdBy: string): Promise<Experiment> {
    const [active] = await this.db
      .select({ id: experiments.id })
      .from(experiments)
      .where(eq(experiments.status, "running"));
    if (active) throw conflict("Another experiment is running: stop it first");
    const [row] = await this.db
      .insert(experiments)
      .values({ name: input.name, description: input.description, variants: input.variants, createdBy })
      .returning();
    this.running = undefined;
    return toExperiment(row as ExperimentRow);
  }

  async list(): Promise<Experiment[]> {
    const rows = await this.db.select().from(experiments).orderBy(desc(experiments.createdAt));
    return rows.map(toExperiment);
  }

  async stop(id: string): Promise<Experiment> {
    const [row] = await this.db
      .update(experiments)
      .set({ status: "stopped", stoppedAt: new Date() })
      .where(and(eq(experiments.id, id), eq(experiments.status, "running")))
      .returning();
    this.running = undefined;
    if (!row) {
      await this.get(id);
      throw conflict("The experiment is not running");
    }
    return toExperiment(row);
  }

  private async get(id: string): Promise<ExperimentRow> {
    const [row] = await this.db.select().from(experiments).where(eq(experiments.id, id));
    if (!row) throw notFound("Experiment");
    return row;
  }

  /** The variant of `userId` in the running experiment, if one runs. */
  async assign(userId: string): Promise<Assignment | undefined> {
    if (!this.running || Date.now() - this.running.at > this.cacheMs) {
      this.running = {
        at: Date.now(),
        value: this.db
          .select()
          .from(experiments)
          .where(eq(experiments.status, "running"))
          .then((rows) => rows[0]),
      };
    }
    const row = await this.running.value;
    if (!row) return undefined;
    return { experimentId: row.id, variant: pickVariant(row.variants, bucket(row.id, userId)) };
  }

  /** Per variant: finished answers, ratings and the positive rate with its 95% interval, latency, tokens. */
  async results(id: string): Promise<ExperimentResults> {
    const row = await this.get(id);
    const perVariant = await this.db
      .select({
        variant: answers.variant,
        answers: sql<number>`count(*)::int`,
        latencyMean: sql<number | null>`avg(${answers.latencyMs})::float8`,
        latencyP50: sql<number | null>`percentile_cont(0.5) within group (order by ${answers.latencyMs})::float8`,
        tokensMean: sql<number | null>`avg(${answers.promptTokens} + ${answers.completionTokens})::float8`,
      })
      .from(answers)
      .where(and(eq(answers.experimentId, id), eq(answers.status, "done")))
      .groupBy(answers.variant);
    const ratings = await this.db
      .select({
        variant: answers.variant,
        ratings: sql<number>`count(*)::int`,
        up: sql<number>`count(*) filter (where ${answerFeedback.rating} = 'up')::int`,
      })
      .from(answerFeedback)
      .innerJoin(answers, eq(answers.id, answerFeedback.answerId))
      .where(and(eq(answers.experimentId, id), eq(answers.status, "done")))
      .groupBy(answers.variant);
    const variants: VariantResult[] = row.variants.map((v) => {
      const a = perVariant.find((p) => p.variant === v.id);
      const r = ratings.find((p) => p.variant === v.id);
      const n = r?.ratings ?? 0;
      const up = r?.up ?? 0;
      return {
        variant: v.id,
        answers: a?.answers ?? 0,
        ratings: n,
        up,
        positiveRate: n > 0 ? up / n : null,
        positiveRateCi: n > 0 ? wilson(up, n) : null,
        latencyMsMean: a?.latencyMean ?? null,
        latencyMsP50: a?.latencyP50 ?? null,
        tokensMean: a?.tokensMean ?? null,
      };
    });
    return { experiment: toExperiment(row), variants };
  }
}
