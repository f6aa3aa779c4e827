import { randomInt, randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ERROR_CODES } from "../../shared/errors.ts";
import { PERMISSIONS, type Permission, ROLE_PERMISSIONS, ROLES, type Role } from "../../shared/permissions.ts";
import type { Me } from "../../shared/schemas/auth.ts";
import { registerUser, type TestUser, userWithRole } from "../helpers/factories.ts";
import { Client, type Reply } from "../helpers/http.ts";
import { startServer, type TestServer } from "../helpers/server.ts";

/**
 * The authorisation matrix, generated from the OpenAPI document: every operation is called without
 * credentials and as each role, and the answer must match its `x-permission` and the table of
 * shared/permissions.ts. A route added without `x-permission`, or made public by accident, fails here.
 */

/** The routes that are open on purpose. Anything else that the document calls public is a mistake. */
const PUBLIC_ON_PURPOSE = [
  "GET /healthz",
  "GET /readyz",
  "POST /api/v1/auth/register",
  "POST /api/v1/auth/login",
].sort();

interface Parameter {
  name: string;
  in: string;
  required?: boolean;
  schema?: { type?: string; format?: string; pattern?: string };
}
interface Operation {
  "x-permission"?: string;
  security?: Record<string, string[]>[];
  parameters?: Parameter[];
  requestBody?: unknown;
}
interface OpenApiDoc {
  paths: Record<string, Record<string, Operation>>;
}

interface Op {
  method: string;
  path: string;
  key: string;
  permission: string | undefined;
  op: Operation;
}

const METHODS = new Set(["get", "put", "post", "delete", "patch", "head", "options"]);
const BASE32 = "abcdefghijklmnopqrstuvwxyz234567";

// The tests are generated from the document, so the server has to be up while the file is collected.
const server: TestServer = await startServer();
let ops: Op[];
try {
  const res = await fetch(`${server.url}/api/v1/openapi.json`);
  if (res.status !== 200) throw new Error(`openapi.json answered ${res.status}`);
  const doc = (await res.json()) as OpenApiDoc;
  ops = Object.entries(doc.paths).flatMap(([path, item]) =>
    Object.entries(item)
      .filter(([method]) => METHODS.has(method))
      .map(([method, op]) => ({
        method: method.toUpperCase(),
        path,
        key: `${method.toUpperCase()} ${path}`,
        permission: op["x-permission"],
        op,
      })),
  );
} catch (err) {
  await server.close();
  throw err;
}
afterAll(() => server.close());

/** A syntactically valid value for a path parameter, from its schema; unknown shapes fail loudly. */
function sampleParam(p: Parameter): string {
  const schema = p.schema ?? {};
  let value: string;
  if (schema.format === "uuid") value = randomUUID();
  else if (schema.pattern === "^[a-z2-7]{26}$")
    value = Array.from({ length: 26 }, () => BASE32[randomInt(BASE32.length)]).join("");
  else if (schema.pattern === "^[a-z0-9-]{1,60}$") value = "loops";
  else throw new Error(`no sample value for path parameter ${p.name}: ${JSON.stringify(schema)}`);
  if (schema.pattern && !new RegExp(schema.pattern).test(value)) throw new Error(`bad sample for ${p.name}`);
  return value;
}

function concretePath(o: Op): string {
  const params = (o.op.parameters ?? []).filter((p) => p.in === "path");
  let path = o.path;
  for (const p of params) path = path.replace(`{${p.name}}`, encodeURIComponent(sampleParam(p)));
  if (/[{}]/.test(path)) throw new Error(`${o.key}: a path placeholder has no parameter in the document`);
  return path;
}

function call(client: Client, o: Op): Promise<Reply<{ code?: string; status?: number }>> {
  const body = o.method === "POST" || o.method === "PATCH" || o.method === "PUT" ? {} : undefined;
  return client.call(o.method, concretePath(o), body);
}

function expectProblem(res: Reply<{ code?: string; status?: number }>, status: number, code: string, who: string) {
  expect(res.status, `${who}: status (body ${JSON.stringify(res.body)})`).toBe(status);
  expect(res.headers.get("content-type"), `${who}: content-type`).toMatch(/^application\/problem\+json/);
  expect(res.body?.code, `${who}: code`).toBe(code);
  expect(res.body?.status, `${who}: body status`).toBe(status);
}

let users: Record<Role, TestUser>;

beforeAll(async () => {
  const admin = await registerUser(server.url, "Matrix Admin");
  expect(admin.me.user.role).toBe("admin");
  users = {
    admin,
    learner: await userWithRole(server.url, admin.client, "learner"),
    teacher: await userWithRole(server.url, admin.client, "teacher"),
  };
});

/**
 * A session of its own for every call: logout and password change end sessions, and no call may depend on
 * what an earlier one left behind.
 */
async function freshSession(role: Role): Promise<Client> {
  const u = users[role];
  const c = new Client(server.url);
  const res = await c.post<Me>("/api/v1/auth/login", { email: u.email, password: u.password });
  if (res.status !== 200) throw new Error(`login as ${role} failed: ${res.status} ${JSON.stringify(res.body)}`);
  expect(res.body.user.role).toBe(role);
  return c;
}

describe("the OpenAPI document", () => {
  it("has enough operations for the matrix to mean something", () => {
    expect(ops.length).toBeGreaterThanOrEqual(12);
  });

  it("names a known permission, or public, on every operation", () => {
    const known = new Set<string>([...PERMISSIONS, "public"]);
    for (const o of ops) expect(known.has(o.permission ?? "(missing)"), `${o.key}: x-permission`).toBe(true);
  });

  it("is public exactly on the routes that are public on purpose", () => {
    const publicOps = ops
      .filter((o) => o.permission === "public")
      .map((o) => o.key)
      .sort();
    expect(publicOps).toEqual(PUBLIC_ON_PURPOSE);
  });

  it("declares security requirements that agree with x-permission", () => {
    for (const o of ops) {
      if (o.permission === "public") expect(o.op.security ?? [], `${o.key}: security`).toEqual([]);
      else expect(o.op.security?.length ?? 0, `${o.key}: security`).toBeGreaterThan(0);
    }
  });
});

describe("authorisation matrix", () => {
  for (const o of ops) {
    const isPublic = o.permission === "public";
    it(`${o.key} (${o.permission ?? "no x-permission"})`, async () => {
      expect(o.permission, `${o.key} has no x-permission`).toBeDefined();

      const anonymous = await call(new Client(server.url), o);
      if (isPublic) {
        expect([401, 403], `anonymous: status ${anonymous.status}`).not.toContain(anonymous.status);
        expect(anonymous.status, "anonymous: server error").toBeLessThan(500);
      } else {
        expectProblem(anonymous, ERROR_CODES.unauthenticated, "unauthenticated", "anonymous");
      }

      for (const role of ROLES) {
        const res = await call(await freshSession(role), o);
        const allowed = isPublic || ROLE_PERMISSIONS[role].includes(o.permission as Permission);
        if (allowed) {
          expect([401, 403], `${role}: status ${res.status} ${JSON.stringify(res.body)}`).not.toContain(res.status);
          expect(res.status, `${role}: server error ${JSON.stringify(res.body)}`).toBeLessThan(500);
        } else {
          expectProblem(res, ERROR_CODES.forbidden, "forbidden", role);
        }
      }
    });
  }
});
