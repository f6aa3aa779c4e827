import { createHash } from "node:crypto";
import { and, asc, desc, eq, gt, gte, lt, lte, type SQL, sql } from "drizzle-orm";
import type { Db } from "../../db/client.ts";
import { auditLog } from "../../db/schema.ts";
import type { AuditEntry, AuditQuery, AuditVerification } from "../../shared/schemas/admin.ts";

type Row = typeof auditLog.$inferSelect;

/** Who did it and from where: filled from the request by the HTTP layer. */
export interface AuditContext {
  actorId: string | null;
  ip: string | null;
  userAgent: string | null;
  requestId: string | null;
}

export interface AuditEvent {
  action: string;
  outcome: "success" | "failure" | "denied";
  targetType?: string | undefined;
  targetId?: string | undefined;
  details?: Record<string, unknown>;
}

export const GENESIS = "0".repeat(64);
/** advisory lock key that serialises appends across every node sharing the database */
const CHAIN_LOCK = 0x0d0c_a0d1;

/** JSON with object keys sorted at every depth: the same entry always hashes the same (jsonb reorders keys). */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  if (value && typeof value === "object") {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(",")}}`;
  }
  return JSON.stringify(value ?? null);
}

/** hash = SHA-256(prevHash, canonical JSON of every field but id and hash) */
export function entryHash(row: Omit<Row, "id" | "hash">): string {
  const { prevHash, at, ...rest } = row;
  return createHash("sha256")
    .update(prevHash)
    .update("\n")
    .update(canonicalJson({ ...rest, at: at.toISOString() }))
    .digest("hex");
}

/**
 * The append-only, hash-chained audit log. Each entry stores the hash of the one before it, so changing or
 * removing any row breaks the chain from there on; `verify()` walks it. A database trigger also refuses
 * UPDATE, DELETE and TRUNCATE.
 */
export class AuditLog {
  private tail: Promise<unknown> = Promise.resolve();

  constructor(private readonly db: Db) {}

  /** Appends one entry. Appends are serialised in-process and, across nodes, by an advisory lock. */
  append(ctx: AuditContext, event: AuditEvent): Promise<void> {
    const run = this.tail.then(() => this.write(ctx, event));
    this.tail = run.catch(() => {});
    return run;
  }

  private async write(ctx: AuditContext, event: AuditEvent): Promise<void> {
    await this.db.transaction(async (tx) => {
      await tx.execute(sql`select pg_advisory_xact_lock(${CHAIN_LOCK})`);
      const [last] = await tx.select({ hash: auditLog.hash }).from(auditLog).orderBy(desc(auditLog.id)).limit(1);
      const row = {
        at: new Date(),
        actorId: ctx.actorId,
        action: event.action,
        targetType: event.targetType ?? null,
        targetId: event.targetId ?? null,
        ip: ctx.ip,
        userAgent: ctx.userAgent,
        requestId: ctx.requestId,
        outcome: event.outcome,
        details: event.details ?? {},
        prevHash: last?.hash ?? GENESIS,
      };
      await tx.insert(auditLog).values({ ...row, hash: entryHash(row) });
    });
  }

  async list(q: AuditQuery): Promise<{ items: AuditEntry[]; nextBefore: number | null }> {
    const where: SQL[] = [];
    if (q.action) where.push(eq(auditLog.action, q.action));
    if (q.actorId) where.push(eq(auditLog.actorId, q.actorId));
    if (q.targetId) where.push(eq(auditLog.targetId, q.targetId));
    if (q.outcome) where.push(eq(auditLog.outcome, q.outcome));
    if (q.from) where.push(gte(auditLog.at, new Date(q.from)));
    if (q.to) where.push(lte(auditLog.at, new Date(q.to)));
    if (q.before) where.push(lt(auditLog.id, q.before));
    const rows = await this.db
      .select()
      .from(auditLog)
      .where(and(...where))
      .orderBy(desc(auditLog.id))
      .limit(q.limit + 1);
    const page = rows.slice(0, q.limit);
    return {
      items: page.map(toEntry),
      nextBefore: rows.length > q.limit ? (page.at(-1)?.id ?? null) : null,
    };
  }

  /** Walks the whole chain in id order, in batches; reports the first entry whose hash or link is wrong. */
  async verify(batch = 1000): Promise<AuditVerification> {
    let prev = GENESIS;
    let afterId = 0;
    let checked = 0;
    for (;;) {
      const rows = await this.db
        .select()
        .from(auditLog)
        .where(gt(auditLog.id, afterId))
        .orderBy(asc(auditLog.id))
        .limit(batch);
      for (const r of rows) {
        const { id, hash, ...rest } = r;
        if (r.prevHash !== prev || entryHash(rest) !== hash) return { ok: false, checked, firstBadId: id };
        prev = hash;
        afterId = id;
        checked++;
      }
      if (rows.length < batch) return { ok: true, checked, firstBadId: null };
    }
  }
}

function toEntry(r: Row): AuditEntry {
  return { ...r, at: r.at.toISOString(), outcome: r.outcome };
}
