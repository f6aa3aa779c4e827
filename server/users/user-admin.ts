import { and, count, desc, eq, ilike, type SQL, sql } from "drizzle-orm";
import type { Db } from "../../db/client.ts";
import { users } from "../../db/schema.ts";
import type { UserListQuery, UserPage, UserPatch } from "../../shared/schemas/admin.ts";
import type { User } from "../../shared/schemas/auth.ts";
import { type AccountService, USERS_LOCK } from "../auth/accounts.ts";
import type { SessionService, UserRow } from "../auth/sessions.ts";
import { AppError, notFound } from "../errors.ts";

/** What an update changed, for the audit log. */
export interface UserChange {
  user: User;
  before: { role: UserRow["role"]; disabled: boolean };
  revokedSessions: number;
}

/** Admin user management: search, role changes, disable/enable, never leaving the product without an admin. */
export class UserAdmin {
  constructor(
    private readonly db: Db,
    private readonly accounts: AccountService,
    private readonly sessions: SessionService,
  ) {}

  /** `q` with an `@` is an exact email lookup (emails are encrypted); otherwise a display-name substring. */
  async list(q: UserListQuery): Promise<UserPage> {
    const where: SQL[] = [];
    if (q.q) {
      if (q.q.includes("@")) where.push(eq(users.emailIndex, this.accounts.emailIndex(q.q)));
      else where.push(ilike(users.displayName, `%${q.q.replace(/[\\%_]/g, (m) => `\\${m}`)}%`));
    }
    if (q.role) where.push(eq(users.role, q.role));
    if (q.disabled !== undefined) where.push(eq(users.disabled, q.disabled));
    const filter = and(...where);
    const [rows, [{ total } = { total: 0 }]] = await Promise.all([
      this.db
        .select()
        .from(users)
        .where(filter)
        .orderBy(desc(users.createdAt), desc(users.id))
        .limit(q.limit)
        .offset((q.page - 1) * q.limit),
      this.db.select({ total: count() }).from(users).where(filter),
    ]);
    return { items: rows.map((r) => this.accounts.toPublic(r)), page: q.page, limit: q.limit, total };
  }

  async update(id: string, patch: UserPatch): Promise<UserChange> {
    const { row, before } = await this.db.transaction(async (tx) => {
      await tx.execute(sql`select pg_advisory_xact_lock(${USERS_LOCK})`);
      const [current] = await tx.select().from(users).where(eq(users.id, id));
      if (!current) throw notFound("User");
      const staysAdmin = (patch.role ?? current.role) === "admin" && !(patch.disabled ?? current.disabled);
      if (current.role === "admin" && !current.disabled && !staysAdmin) {
        const [{ n } = { n: 0 }] = await tx
          .select({ n: count() })
          .from(users)
          .where(and(eq(users.role, "admin"), eq(users.disabled, false)));
        if (n <= 1) throw new AppError("last_admin");
      }
      const [updated] = await tx
        .update(users)
        .set({ ...patch, updatedAt: new Date() })
        .where(eq(users.id, id))
        .returning();
      return { row: updated as UserRow, before: { role: current.role, disabled: current.disabled } };
    });
    // Disabling ends every session at once; tokens die with them because each use checks its session.
    const revokedSessions = patch.disabled === true ? await this.sessions.revokeAll(id) : 0;
    this.sessions.invalidateUser(id);
    return { user: this.accounts.toPublic(row), before, revokedSessions };
  }
}
