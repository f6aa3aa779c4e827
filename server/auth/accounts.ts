import { count, eq, sql } from "drizzle-orm";
import type { Db } from "../../db/client.ts";
import { users } from "../../db/schema.ts";
import type { User } from "../../shared/schemas/auth.ts";
import { BoundedMap } from "../bounded-map.ts";
import type { Keyring } from "../crypto/keyring.ts";
import { AppError, conflict, invalid } from "../errors.ts";
import { burnVerification, hashPassword, passwordProblems, verifyPassword } from "./passwords.ts";
import type { UserRow } from "./sessions.ts";

/** advisory lock key serialising changes that depend on counting users or admins */
export const USERS_LOCK = 0x0d0c_0001;
export const EMAIL_AAD = "users.email";
export const EMAIL_INDEX = "users.email";

/** Accounts: registration, credentials, passwords, and the public shape of a user. */
export class AccountService {
  constructor(
    private readonly db: Db,
    private readonly keyring: Keyring,
    private readonly adminEmail: string | undefined,
  ) {}

  emailIndex(email: string): string {
    return this.keyring.blindIndex(email.trim().toLowerCase(), EMAIL_INDEX);
  }

  /** Decrypting on every `/me` would cost more than the rest of the request; a ciphertext never changes meaning. */
  private readonly emails = new BoundedMap<string, string>(10_000);

  private email(emailEnc: string): string {
    let email = this.emails.get(emailEnc);
    if (email === undefined) {
      email = this.keyring.decrypt(emailEnc, EMAIL_AAD);
      this.emails.set(emailEnc, email);
    }
    return email;
  }

  toPublic(row: UserRow): User {
    return {
      id: row.id,
      email: this.email(row.emailEnc),
      displayName: row.displayName,
      role: row.role,
      disabled: row.disabled,
      createdAt: row.createdAt.toISOString(),
    };
  }

  /**
   * Creates an account. The first account of an empty database, and the one whose email is ADMIN_EMAIL,
   * become admins; everyone else starts as a learner.
   */
  async register(input: { email: string; password: string; displayName: string }): Promise<UserRow> {
    const email = input.email.trim().toLowerCase();
    const problems = passwordProblems(input.password, { email, displayName: input.displayName });
    if (problems.length > 0) throw invalid(problems, "The password is too easy to guess");
    const passwordHash = await hashPassword(input.password);
    const emailIndex = this.emailIndex(email);
    return this.db.transaction(async (tx) => {
      await tx.execute(sql`select pg_advisory_xact_lock(${USERS_LOCK})`);
      const [existing] = await tx.select({ id: users.id }).from(users).where(eq(users.emailIndex, emailIndex));
      if (existing)
        throw conflict("An account with this email already exists", [
          { path: "body.email", message: "already registered" },
        ]);
      const [{ n } = { n: 0 }] = await tx.select({ n: count() }).from(users);
      const role = n === 0 || email === this.adminEmail ? "admin" : "learner";
      const [row] = await tx
        .insert(users)
        .values({
          emailEnc: this.keyring.encrypt(email, EMAIL_AAD),
          emailIndex,
          displayName: input.displayName,
          passwordHash,
          role,
        })
        .returning();
      return row as UserRow;
    });
  }

  async findByEmail(email: string): Promise<UserRow | undefined> {
    const [row] = await this.db
      .select()
      .from(users)
      .where(eq(users.emailIndex, this.emailIndex(email)));
    return row;
  }

  async findById(id: string): Promise<UserRow | undefined> {
    const [row] = await this.db.select().from(users).where(eq(users.id, id));
    return row;
  }

  /**
   * Checks credentials: the user, or the id of the account that was tried (null when no account has this
   * email). Unknown emails cost as much time as wrong passwords. A disabled account with the right password
   * gets `account_disabled`.
   */
  async authenticate(
    email: string,
    password: string,
  ): Promise<{ user: UserRow } | { user: null; triedId: string | null }> {
    const row = await this.findByEmail(email);
    if (!row) {
      await burnVerification(password);
      return { user: null, triedId: null };
    }
    if (!(await verifyPassword(row.passwordHash, password))) return { user: null, triedId: row.id };
    if (row.disabled) throw Object.assign(new AppError("account_disabled"), { triedId: row.id });
    return { user: row };
  }

  async changePassword(user: UserRow, current: string, next: string): Promise<void> {
    if (!(await verifyPassword(user.passwordHash, current))) {
      throw new AppError("invalid_credentials", "The current password is wrong", [
        { path: "body.currentPassword", message: "wrong password" },
      ]);
    }
    const email = this.email(user.emailEnc);
    const problems = passwordProblems(next, { email, displayName: user.displayName }, "body.newPassword");
    if (problems.length > 0) throw invalid(problems, "The password is too easy to guess");
    await this.db
      .update(users)
      .set({ passwordHash: await hashPassword(next), updatedAt: new Date() })
      .where(eq(users.id, user.id));
  }
}
