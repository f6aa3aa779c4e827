import { type RateLimiterAbstract, RateLimiterRes } from "rate-limiter-flexible";
import { tooMany } from "../errors.ts";
import type { Limiters } from "../ratelimit/limiters.ts";

/**
 * Brute-force protection for login (the rate-limiter-flexible "login endpoint" recipe): consecutive failures
 * per account+IP, and failures per IP whatever the account. The failure that reaches either limit blocks that
 * key for the lockout period; a successful login resets the account+IP counter. Accounts are keyed by their
 * blind index, so no email address is written to the limiter store.
 */
export class LoginGuard {
  constructor(
    private readonly limiters: Limiters,
    private readonly lockoutSec: number,
  ) {}

  private keys(accountKey: string, ip: string): [RateLimiterAbstract, string][] {
    return [
      [this.limiters.loginAccountIp, `${accountKey}:${ip}`],
      [this.limiters.loginIp, ip],
    ];
  }

  /** Throws `locked_out` (429) while either key is blocked. */
  async check(accountKey: string, ip: string): Promise<void> {
    const states = await Promise.all(
      this.keys(accountKey, ip).map(async ([limiter, key]) => {
        const res = await limiter.get(key);
        return res && res.consumedPoints > limiter.points ? res.msBeforeNext : 0;
      }),
    );
    const wait = Math.max(...states);
    if (wait > 0) throw tooMany(wait / 1000, "locked_out");
  }

  /** Counts a failure; the one that uses up a limit starts the lockout. */
  async failed(accountKey: string, ip: string): Promise<void> {
    for (const [limiter, key] of this.keys(accountKey, ip)) {
      try {
        const res = await limiter.consume(key);
        if (res.remainingPoints <= 0) await limiter.block(key, this.lockoutSec);
      } catch (err) {
        if (!(err instanceof RateLimiterRes)) throw err;
      }
    }
  }

  async succeeded(accountKey: string, ip: string): Promise<void> {
    await this.limiters.loginAccountIp.delete(`${accountKey}:${ip}`);
  }
}
