import { createHash, timingSafeEqual } from "node:crypto";
import { encodeBase32LowerCaseNoPadding } from "@oslojs/encoding";
import { and, eq, ne, sql } from "drizzle-orm";
import type { Db } from "../../db/client.ts";
import { sessions, users } from "../../db/schema.ts";
import type { SessionCache } from "./session-cache.ts";

export type UserRow = typeof users.$inferSelect;
export type SessionRow = typeof sessions.$inferSelect;

export interface SessionMeta {
  ip: string | null;
  userAgent: string | null;
}

export interface SessionPolicy {
  idleTimeoutSec: number;
  maxAgeSec: number;
}

function random(bytes: number): string {
  const b = new Uint8Array(bytes);
  crypto.getRandomValues(b);
  return encodeBase32LowerCaseNoPadding(b);
}

// node's native SHA-256: the pure-JS one cost a fifth of an authenticated request.
const hashSecret = (secret: string) => createHash("sha256").update(secret).digest("hex");

/**
 * Sessions after Lucia's guide: the cookie holds `<id>.<secret>`; we store only SHA-256(secret) and compare it
 * in constant time. A session dies after `idleTimeoutSec` without use or `maxAgeSec` after creation, on logout,
 * on password change, and when its user is disabled.
 */
export class SessionService {
  /** `lastUsedAt` is written at most this often, so that reads do not turn into writes on every request */
  private readonly touchEveryMs: number;

  private readonly lookup;

  constructor(
    private readonly db: Db,
    private readonly policy: SessionPolicy,
    private readonly cache: SessionCache,
  ) {
    this.touchEveryMs = Math.min(60_000, (policy.idleTimeoutSec * 1000) / 10);
    // Prepared once: building and planning the query on every request costs more than running it.
    this.lookup = db
      .select({ session: sessions, user: users })
      .from(sessions)
      .innerJoin(users, eq(users.id, sessions.userId))
      .where(eq(sessions.id, sql.placeholder("id")))
      .prepare("session_lookup");
  }

  async create(userId: string, meta: SessionMeta): Promise<{ token: string; session: SessionRow }> {
    const id = random(16);
    const secret = random(20);
    const now = new Date();
    const [session] = await this.db
      .insert(sessions)
      .values({
        id,
        secretHash: hashSecret(secret),
        userId,
        createdAt: now,
        lastUsedAt: now,
        expiresAt: new Date(now.getTime() + this.policy.maxAgeSec * 1000),
        ip: meta.ip,
        userAgent: meta.userAgent,
      })
      .returning();
    return { token: `${id}.${secret}`, session: session as SessionRow };
  }

  /** The live session and its (enabled) user for a cookie token, or null. */
  async validateToken(token: string): Promise<{ session: SessionRow; user: UserRow } | null> {
    const [id, secret] = token.split(".");
    if (!id || !secret || id.length !== 26 || secret.length !== 32) return null;
    const found = await this.load(id);
    if (!found) return null;
    const given = Buffer.from(hashSecret(secret));
    const stored = Buffer.from(found.session.secretHash);
    if (given.length !== stored.length || !timingSafeEqual(given, stored)) return null;
    return found;
  }

  /** The live session and user by session id (an access token names its session). */
  validateId(id: string): Promise<{ session: SessionRow; user: UserRow } | null> {
    return this.load(id);
  }

  private async load(id: string): Promise<{ session: SessionRow; user: UserRow } | null> {
    let row = this.cache.get(id);
    if (!row) {
      const epoch = this.cache.epoch;
      [row] = await this.lookup.execute({ id });
      if (!row) return null;
      this.cache.set(row.session, row.user, epoch);
    }
    if (row.user.disabled) return null;
    const now = Date.now();
    const idleUntil = row.session.lastUsedAt.getTime() + this.policy.idleTimeoutSec * 1000;
    if (now >= idleUntil || now >= row.session.expiresAt.getTime()) {
      await this.revoke(id);
      return null;
    }
    if (now - row.session.lastUsedAt.getTime() >= this.touchEveryMs) {
      row.session.lastUsedAt = new Date(now);
      await this.db.update(sessions).set({ lastUsedAt: row.session.lastUsedAt }).where(eq(sessions.id, id));
    }
    return row;
  }

  /** When an idle session ends if it stays unused from now on. */
  idleExpiry(session: SessionRow): Date {
    const idle = session.lastUsedAt.getTime() + this.policy.idleTimeoutSec * 1000;
    return new Date(Math.min(idle, session.expiresAt.getTime()));
  }

  list(userId: string): Promise<SessionRow[]> {
    return this.db.select().from(sessions).where(eq(sessions.userId, userId)).orderBy(sessions.createdAt);
  }

  async revoke(id: string): Promise<void> {
    await this.db.delete(sessions).where(eq(sessions.id, id));
    this.cache.invalidate({ kind: "session", id });
  }

  /** Forgets what is cached about a user (after a role change or a disable), on every node. */
  invalidateUser(userId: string): void {
    this.cache.invalidate({ kind: "user", id: userId });
  }

  /** Revokes one of the user's own sessions; false when it is not theirs (or does not exist). */
  async revokeOwn(userId: string, id: string): Promise<boolean> {
    const gone = await this.db
      .delete(sessions)
      .where(and(eq(sessions.id, id), eq(sessions.userId, userId)))
      .returning({ id: sessions.id });
    this.cache.invalidate({ kind: "session", id });
    return gone.length > 0;
  }

  async revokeAll(userId: string, exceptId?: string): Promise<number> {
    const where = exceptId ? and(eq(sessions.userId, userId), ne(sessions.id, exceptId)) : eq(sessions.userId, userId);
    const gone = await this.db.delete(sessions).where(where).returning({ id: sessions.id });
    this.cache.invalidate({ kind: "user", id: userId });
    return gone.length;
  }
}
