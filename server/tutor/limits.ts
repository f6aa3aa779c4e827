import type { Redis } from "ioredis";
import { type RateLimiterAbstract, RateLimiterMemory, RateLimiterRedis, RateLimiterRes } from "rate-limiter-flexible";
import { tooMany } from "../errors.ts";
import type { Logger } from "../log.ts";

const DAY_SEC = 24 * 3600;
/** The counters count freely; the limits, which admins change at runtime, are compared when asking. */
const UNBOUNDED = 2 ** 31 - 1;

/**
 * The tutor's per-user limits: questions per minute and tokens per day (a rolling day from the first question).
 * Counters live in Redis when clustered, in memory otherwise; the limits themselves come from the admin
 * settings at each question, so a change applies at once.
 */
export class TutorLimits {
  private readonly questions: RateLimiterAbstract;
  private readonly tokens: RateLimiterAbstract;

  constructor(
    redis: Redis | undefined,
    private readonly log: Logger,
  ) {
    const make = (keyPrefix: string, duration: number) =>
      redis
        ? new RateLimiterRedis({
            storeClient: redis,
            keyPrefix,
            points: UNBOUNDED,
            duration,
            insuranceLimiter: new RateLimiterMemory({ keyPrefix, points: UNBOUNDED, duration }),
          })
        : new RateLimiterMemory({ keyPrefix, points: UNBOUNDED, duration });
    this.questions = make("rl:tutor:questions", 60);
    this.tokens = make("rl:tutor:tokens", DAY_SEC);
  }

  /** Counts one question of `userId`, or refuses it (429 with the delay before a retry makes sense). */
  async spendQuestion(userId: string, limits: { perMinute: number; tokensPerDay: number }): Promise<void> {
    const used = await this.safe(() => this.tokens.get(userId));
    if (used && used.consumedPoints >= limits.tokensPerDay) throw tooMany(used.msBeforeNext / 1000);
    const res = await this.safe(() => this.questions.consume(userId));
    if (res && res.consumedPoints > limits.perMinute) throw tooMany(res.msBeforeNext / 1000);
  }

  /** Adds the tokens an answer used to its asker's day. */
  async addTokens(userId: string, tokens: number): Promise<void> {
    if (tokens > 0) await this.safe(() => this.tokens.penalty(userId, tokens));
  }

  /** A counter that cannot be read does not stop the tutor (its memory fallback failed too). */
  private async safe(run: () => Promise<RateLimiterRes | null>): Promise<RateLimiterRes | null> {
    try {
      return await run();
    } catch (err) {
      if (err instanceof RateLimiterRes) return err;
      this.log.error({ err }, "tutor limiter unavailable");
      return null;
    }
  }
}
