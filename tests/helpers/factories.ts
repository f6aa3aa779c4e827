import type { Role } from "../../shared/permissions.ts";
import type { Me } from "../../shared/schemas/auth.ts";
import { Client } from "./http.ts";

let counter = 0;

export const uniqueEmail = (prefix = "user") => `${prefix}.${process.pid}.${Date.now()}.${counter++}@example.com`;
export const PASSWORD = "a long enough passphrase";

export interface TestUser {
  client: Client;
  me: Me;
  email: string;
  password: string;
}

/** Registers a fresh account through the API; its client holds the session cookie. */
export async function registerUser(baseUrl: string, displayName = "Test Learner"): Promise<TestUser> {
  const client = new Client(baseUrl);
  const email = uniqueEmail();
  const res = await client.post<Me>("/api/v1/auth/register", { email, password: PASSWORD, displayName });
  if (res.status !== 201) throw new Error(`register failed: ${res.status} ${JSON.stringify(res.body)}`);
  return { client, me: res.body, email, password: PASSWORD };
}

/** A user with `role`, promoted by `admin` when needed. */
export async function userWithRole(baseUrl: string, admin: Client, role: Role): Promise<TestUser> {
  const u = await registerUser(baseUrl, `Test ${role}`);
  if (role !== u.me.user.role) {
    const res = await admin.patch(`/api/v1/admin/users/${u.me.user.id}`, { role });
    if (res.status !== 200) throw new Error(`promotion failed: ${res.status} ${JSON.stringify(res.body)}`);
    u.me = { ...u.me, user: { ...u.me.user, role } };
  }
  return u;
}

/** Polls `check` until it returns a truthy value; never a blind sleep. */
export async function waitFor<T>(
  check: () => T | Promise<T>,
  timeoutMs = 5000,
  intervalMs = 25,
): Promise<NonNullable<T>> {
  const until = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v) return v as NonNullable<T>;
    } catch (err) {
      last = err;
    }
    if (Date.now() > until) throw new Error(`waitFor timed out${last ? `: ${String(last)}` : ""}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}
