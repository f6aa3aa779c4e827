import fc from "fast-check";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { ERROR_CODES, type ErrorCode } from "../../shared/errors.ts";
import { type Permission, ROLE_PERMISSIONS, ROLES } from "../../shared/permissions.ts";
import type { Me } from "../../shared/schemas/auth.ts";
import { registerUser } from "../helpers/factories.ts";
import { startServer, type TestServer } from "../helpers/server.ts";

/**
 * Property-based fuzzing of every route of the OpenAPI document: random and oversized bodies, wrong content
 * types, random query strings and path segments, anonymous and with a session. Whatever comes in, the server
 * never answers 5xx, keeps running, enforces authentication and permissions before it looks at the input,
 * and every error is problem+json with our stable code.
 */

const RUNS = 150;
const TIMEOUT = 60_000;
/** Keep request lines under Node's 16 KiB header limit: beyond it Node itself answers, not the app. */
const QUERY_BUDGET = 12_000;

// ---------------------------------------------------------------------------------------------------------------
// The document

interface Schema {
  $ref?: string;
  type?: string;
  format?: string;
  pattern?: string;
  enum?: unknown[];
  minLength?: number;
  maxLength?: number;
  minimum?: number;
  maximum?: number;
  properties?: Record<string, Schema>;
}
interface Parameter {
  name: string;
  in: string;
  schema?: Schema;
}
interface Operation {
  "x-permission"?: string;
  /** a route whose body may be larger than the server's default limit */
  "x-body-limit"?: number;
  parameters?: Parameter[];
  requestBody?: { content?: Record<string, { schema?: Schema }> };
}
interface OpenApiDoc {
  paths: Record<string, Record<string, Operation>>;
  components?: { schemas?: Record<string, Schema> };
}

interface Op {
  method: string;
  path: string;
  key: string;
  permission: string;
  hasBody: boolean;
  bodyLimit: number | undefined;
  bodyProps: Record<string, Schema>;
  pathParams: Parameter[];
  queryNames: string[];
  queryParams: Parameter[];
}

type Auth = "anonymous" | "admin" | "learner";
const AUTHS: readonly Auth[] = ["anonymous", "admin", "learner"];

/** Routes that end the caller's sessions: only ever fuzzed anonymously, so the kept sessions survive. */
const SESSION_ENDING = new Set(["/api/v1/auth/logout", "/api/v1/auth/password"]);
const WITH_BODY = new Set(["POST", "PUT", "PATCH", "DELETE"]);
const HTTP_METHODS = new Set(["get", "put", "post", "delete", "patch", "head", "options"]);

let server: TestServer;
let ops: Op[];
let adminId: string;
const cookies: Record<Exclude<Auth, "anonymous">, string> = { admin: "", learner: "" };

function loadOps(doc: OpenApiDoc): Op[] {
  const resolve = (s: Schema | undefined): Schema | undefined => {
    const name = s?.$ref?.replace("#/components/schemas/", "");
    return name ? doc.components?.schemas?.[name] : s;
  };
  return Object.entries(doc.paths).flatMap(([path, item]) =>
    Object.entries(item)
      .filter(([method]) => HTTP_METHODS.has(method))
      .map(([method, op]) => {
        const body = resolve(op.requestBody?.content?.["application/json"]?.schema);
        return {
          method: method.toUpperCase(),
          path,
          key: `${method.toUpperCase()} ${path}`,
          permission: op["x-permission"] ?? "(missing)",
          hasBody: op.requestBody !== undefined,
          bodyLimit: op["x-body-limit"],
          bodyProps: body?.properties ?? {},
          pathParams: (op.parameters ?? []).filter((p) => p.in === "path"),
          queryNames: (op.parameters ?? []).filter((p) => p.in === "query").map((p) => p.name),
          queryParams: (op.parameters ?? []).filter((p) => p.in === "query"),
        };
      }),
  );
}

beforeAll(async () => {
  server = await startServer();
  const admin = await registerUser(server.url, "Fuzz Admin");
  const learner = await registerUser(server.url, "Fuzz Learner");
  expect(admin.me.user.role).toBe("admin");
  expect(learner.me.user.role).toBe("learner");
  adminId = admin.me.user.id;
  cookies.admin = admin.client.cookie ?? "";
  cookies.learner = learner.client.cookie ?? "";
  const res = await fetch(`${server.url}/api/v1/openapi.json`);
  expect(res.status).toBe(200);
  ops = loadOps((await res.json()) as OpenApiDoc);
  expect(ops.length).toBeGreaterThanOrEqual(12);
});
afterAll(() => server?.close());

/** After every property: the server is alive, and the sessions the fuzzing uses are intact. */
afterEach(async () => {
  const health = await fetch(`${server.url}/healthz`);
  expect(health.status).toBe(200);
  for (const who of ["admin", "learner"] as const) {
    const me = await fetch(`${server.url}/api/v1/auth/me`, { headers: { cookie: cookies[who] } });
    expect(me.status, `${who} session`).toBe(200);
    expect(((await me.json()) as Me).user.role).toBe(who);
  }
});

// ---------------------------------------------------------------------------------------------------------------
// Sending and checking

interface FuzzRequest {
  method: string;
  /** path and query, sent as given (fetch only normalises what a browser would) */
  target: string;
  auth: Auth;
  body?: string | Uint8Array | { stream: number };
  /** undefined: application/json when there is a body; null: no Content-Type at all */
  contentType?: string | null;
}

interface Answer {
  status: number;
  headers: Headers;
  text: string;
}

const encoder = new TextEncoder();

/** A body of `size` bytes sent chunked (no Content-Length), as a stream. */
function chunkedBody(size: number): ReadableStream<Uint8Array> {
  let left = size;
  const chunk = encoder.encode("[".padEnd(16 * 1024, " "));
  return new ReadableStream({
    pull(controller) {
      if (left <= 0) return controller.close();
      const n = Math.min(left, chunk.length);
      controller.enqueue(chunk.subarray(0, n));
      left -= n;
    },
  });
}

/** The path as the router will see it: dot segments resolved, percent-decoding as Hono does. */
function routedPath(target: string): string {
  const { pathname } = new URL(server.url + target);
  try {
    return decodeURI(pathname);
  } catch {
    return pathname;
  }
}

function describeRequest(r: FuzzRequest): string {
  const body =
    r.body === undefined
      ? ""
      : typeof r.body === "string"
        ? ` body=${JSON.stringify(r.body.slice(0, 200))}${r.body.length > 200 ? `…(${r.body.length})` : ""}`
        : r.body instanceof Uint8Array
          ? ` body=<${r.body.length} bytes>`
          : ` body=<chunked ${r.body.stream} bytes>`;
  const target = r.target.length > 300 ? `${r.target.slice(0, 300)}…(${r.target.length})` : r.target;
  return `${r.auth} ${r.method} ${target} content-type=${JSON.stringify(r.contentType)}${body}`;
}

async function send(r: FuzzRequest): Promise<Answer> {
  if (r.auth !== "anonymous" && SESSION_ENDING.has(routedPath(r.target).replace(/\/+$/, ""))) {
    throw new Error(`fuzzing would end the ${r.auth} session: ${describeRequest(r)}`);
  }
  const headers: Record<string, string> = {};
  if (r.auth !== "anonymous") headers.cookie = cookies[r.auth];
  // Like a browser page of this site, so that requests get past the CSRF check into the route.
  if (WITH_BODY.has(r.method)) headers.origin = server.url;
  let body: BodyInit | undefined;
  const init: RequestInit & { duplex?: "half" } = { method: r.method, headers, redirect: "manual" };
  if (r.body !== undefined) {
    if (typeof r.body === "string") body = encoder.encode(r.body);
    else if (r.body instanceof Uint8Array) body = new Uint8Array(r.body);
    else {
      body = chunkedBody(r.body.stream);
      init.duplex = "half";
    }
    if (r.contentType === undefined) headers["content-type"] = "application/json";
  }
  if (typeof r.contentType === "string") headers["content-type"] = r.contentType;
  init.body = body ?? null;
  const res = await fetch(new URL(server.url + r.target), init);
  return { status: res.status, headers: res.headers, text: await res.text() };
}

function fail(r: FuzzRequest, a: Answer, why: string): never {
  throw new Error(`${why}\n  request: ${describeRequest(r)}\n  answer: ${a.status} ${a.text.slice(0, 500)}`);
}

/** The properties every answer must have, whatever the request. Returns the problem code of an error. */
function checkAnswer(r: FuzzRequest, a: Answer): string | undefined {
  if (a.status >= 500) fail(r, a, "server error");
  if (a.status < 400) return undefined;
  const type = a.headers.get("content-type") ?? "";
  if (!/^application\/problem\+json(;|$)/.test(type)) fail(r, a, `error with content-type ${type}`);
  if (r.method === "HEAD") return undefined;
  let p: Record<string, unknown>;
  try {
    p = JSON.parse(a.text);
  } catch {
    fail(r, a, "problem body is not JSON");
  }
  if (typeof p.type !== "string" || !p.type) fail(r, a, "problem without type");
  if (typeof p.title !== "string" || !p.title) fail(r, a, "problem without title");
  if (p.status !== a.status) fail(r, a, "problem status differs from the HTTP status");
  const code = p.code;
  if (typeof code !== "string" || !(code in ERROR_CODES)) fail(r, a, "problem without a known code");
  if (ERROR_CODES[code as ErrorCode] !== a.status) fail(r, a, `code ${code} does not go with ${a.status}`);
  if (typeof p.requestId !== "string" || !p.requestId) fail(r, a, "problem without requestId");
  if (a.headers.get("x-request-id") !== p.requestId) fail(r, a, "requestId differs from X-Request-Id");
  return code;
}

/** What authentication and permissions must answer before the route looks at its input, if anything. */
function gate(op: Op, auth: Auth): { status: number; code: ErrorCode } | undefined {
  if (op.permission === "public") return undefined;
  if (auth === "anonymous") return { status: 401, code: "unauthenticated" };
  const role = auth === "admin" ? "admin" : "learner";
  if (!ROLE_PERMISSIONS[role].includes(op.permission as Permission)) return { status: 403, code: "forbidden" };
  return undefined;
}

function expectGate(r: FuzzRequest, op: Op, a: Answer, code: string | undefined): boolean {
  const g = gate(op, r.auth);
  if (!g) return false;
  if (a.status !== g.status || code !== g.code) fail(r, a, `expected ${g.status} ${g.code} before any validation`);
  return true;
}

async function fuzz(r: FuzzRequest): Promise<{ answer: Answer; code: string | undefined }> {
  const answer = await send(r);
  return { answer, code: checkAnswer(r, answer) };
}

// ---------------------------------------------------------------------------------------------------------------
// Arbitraries

const authArb = fc.constantFrom(...AUTHS);

/** An operation that `auth` may fuzz: session-ending routes only anonymously. */
const opFor = (auth: Auth, filter: (o: Op) => boolean = () => true) => {
  const pool = ops.filter((o) => filter(o) && (auth === "anonymous" || !SESSION_ENDING.has(o.path)));
  return fc.constantFrom(...pool);
};

/** Operation and caller together. */
const target = (filter?: (o: Op) => boolean) =>
  authArb.chain((auth) => opFor(auth, filter).map((op) => ({ auth, op })));

/** A syntactically valid path parameter: a UUID (sometimes the admin's own id), or a string of its pattern. */
function validParam(p: Parameter): fc.Arbitrary<string> {
  if (p.schema?.format === "uuid") return fc.oneof(fc.uuid(), fc.constant(adminId));
  if (p.schema?.pattern) return fc.stringMatching(new RegExp(p.schema.pattern));
  return fc.string({ minLength: 1, maxLength: 40 }).map(encodeURIComponent);
}

/** Segments that have broken routers and static file servers before. */
const NASTY_SEGMENTS = [
  "",
  ".",
  "..",
  "%2e%2e",
  "%2E%2E%2F",
  "..%2f..%2fetc%2fpasswd",
  "%",
  "%zz",
  "%E0%A4%A",
  "%C0%AE",
  "%00",
  "a%00b",
  "%0d%0aX-Injected:%201",
  "%ff%fe",
  "%25",
  "%2F",
  "~",
  ";",
  ":id",
  "{id}",
  "*",
  "@",
  "null",
  "undefined",
  "__proto__",
  "constructor",
  "index.html",
  "openapi.json",
  "x".repeat(2000),
];

/** A random path segment, already in URL form (encoded, or raw nastiness). */
const segmentArb = fc.oneof(
  fc.string({ unit: "grapheme", maxLength: 40 }).map(encodeURIComponent),
  fc.string({ unit: "binary-ascii", maxLength: 40 }).map(encodeURIComponent),
  fc.webSegment(),
  fc.constantFrom(...NASTY_SEGMENTS),
  // NUL once decoded: it follows the path into logs and the audit log
  fc.constantFrom("%00", "a%00b", "%00%00"),
);

/** A concrete path for `op`, with valid (or, if `randomParams`, random) path parameters. */
function pathFor(op: Op, randomParams = false): fc.Arbitrary<string> {
  if (op.pathParams.length === 0) return fc.constant(op.path);
  return fc
    .tuple(...op.pathParams.map((p) => (randomParams ? segmentArb : validParam(p))))
    .map((values) => op.pathParams.reduce((path, p, i) => path.replace(`{${p.name}}`, values[i] ?? ""), op.path));
}

const ODD_STRINGS = [
  "",
  " ",
  "\u0000",
  "a\u0000b",
  "\uFEFF",
  "\u202E",
  "😀",
  "%",
  "null",
  "true",
  "[]",
  "{}",
  "-0",
  "1e309",
  "NaN",
  "Infinity",
  "99999999999999999999",
  "9007199254740993",
  "1.5",
  "-1",
  "0x10",
  "admin",
  "ADMIN",
  "learner",
  "yes",
  "2024-01-01T00:00:00Z",
  "0000-01-01T00:00:00Z",
  "9999-12-31T23:59:59.999Z",
  "+275760-09-13T00:00:00.000Z",
  "' OR 1=1 --",
  "%' OR '%'='",
  "\\",
  "a@b.c",
  "<script>alert(1)</script>",
];

/** Text that storage layers choke on: one awkward character (NUL, a lone surrogate...) inside ordinary text. */
const hostileTextArb = fc.oneof(
  fc.constantFrom(...ODD_STRINGS),
  fc
    .tuple(
      fc.string({ minLength: 1, maxLength: 10 }),
      fc.oneof(
        // NUL first: PostgreSQL text cannot hold it
        { weight: 4, arbitrary: fc.constant("\u0000") },
        { weight: 3, arbitrary: fc.constantFrom("\uD800", "\uDC00", "\uFFFF", "\u2028", "\u0085", "\u001B") },
      ),
    )
    .chain(([a, c]) => fc.string({ maxLength: 10 }).map((b) => `${a}${c}${b}`)),
);

/** A string value from everywhere: unicode, control characters, edge numbers, long runs. */
const valueArb = fc.oneof(
  fc.string({ unit: "grapheme", maxLength: 60 }),
  fc.string({ unit: "binary-ascii", maxLength: 60 }),
  { weight: 2, arbitrary: hostileTextArb },
  fc.integer().map(String),
  fc.double().map(String),
  fc.nat({ max: 4000 }).map((n) => "é".repeat(n + 300)),
  fc.string({ unit: "grapheme-ascii", minLength: 500, maxLength: 3000 }),
);

const bodyKeys = (op: Op) => Object.keys(op.bodyProps);

/** A value that its schema accepts (near enough: server-side rules such as password strength aside). */
function validValue(schema: Schema): fc.Arbitrary<unknown> {
  if (schema.enum?.length) return fc.constantFrom(...schema.enum);
  if (schema.type === "boolean") return fc.boolean();
  if (schema.type === "integer" || schema.type === "number") {
    return fc.integer({ min: schema.minimum ?? 0, max: Math.min(schema.maximum ?? 1000, 1000) });
  }
  if (schema.format === "email") return fc.nat().map((n) => `fuzz.${n}@example.com`);
  if (schema.format === "uuid") return fc.uuid();
  if (schema.format === "date-time") {
    return fc
      .date({ min: new Date("2000-01-01T00:00:00Z"), max: new Date("2100-01-01T00:00:00Z"), noInvalidDate: true })
      .map((d) => d.toISOString());
  }
  if (schema.type === "string") {
    const min = Math.max(1, schema.minLength ?? 1);
    const max = Math.max(min, Math.min(schema.maxLength ?? 40, 40));
    return fc.oneof(fc.constant("a long enough passphrase"), fc.string({ minLength: min, maxLength: max }));
  }
  return fc.jsonValue({ maxDepth: 2 });
}

/**
 * A body the operation's schema accepts, then damaged in one place: one field replaced by a fuzzed value,
 * removed, or joined by an unknown one. This is what gets past the schema into the handlers and the database.
 */
const nearValidBody = (op: Op) => {
  const keys = bodyKeys(op);
  const valid = fc.record(Object.fromEntries(keys.map((k) => [k, validValue(op.bodyProps[k] ?? {})])));
  const damage = fc.oneof(
    fc.record({
      kind: fc.constant("set" as const),
      key: keys.length ? fc.constantFrom(...keys) : fc.string(),
      value: valueArb,
    }),
    fc.record({ kind: fc.constant("drop" as const), key: keys.length ? fc.constantFrom(...keys) : fc.string() }),
    fc.record({
      kind: fc.constant("add" as const),
      key: fc.string({ maxLength: 10 }),
      value: fc.jsonValue({ maxDepth: 1 }),
    }),
  );
  return fc.tuple(valid, fc.option(damage, { nil: undefined, freq: 3 })).map(([body, d]) => {
    const out: Record<string, unknown> = { ...body };
    if (d?.kind === "drop") delete out[d.key];
    else if (d)
      Object.defineProperty(out, d.key, { value: d.value, enumerable: true, writable: true, configurable: true });
    return JSON.stringify(out);
  });
};

/** Free-text fields (no enum, no format) of the body and the query: where awkward text can reach storage. */
function textFields(op: Op): { where: "body" | "query"; name: string }[] {
  const isText = (s: Schema | undefined) => s?.type === "string" && !s.enum && !s.format && !s.pattern;
  return [
    ...Object.entries(op.bodyProps)
      .filter(([, s]) => isText(s))
      .map(([name]) => ({ where: "body" as const, name })),
    ...op.queryParams.filter((p) => isText(p.schema)).map((p) => ({ where: "query" as const, name: p.name })),
  ];
}

/** Valid query parameters for `op` (some of them), as [name, value] pairs. */
const validQuery = (op: Op) =>
  op.queryParams.length === 0
    ? fc.constant([] as [string, string][])
    : fc
        .subarray(op.queryParams)
        .chain((ps) => fc.tuple(...ps.map((p) => validValue(p.schema ?? {}).map((v) => [p.name, String(v)] as const))))
        .map((pairs) => pairs.map(([k, v]) => [k, v] as [string, string]));

/** A JSON body built around the operation's own field names, so that it gets past the first checks. */
const schemaBody = (op: Op) =>
  fc
    .dictionary(
      fc.oneof(
        { weight: 4, arbitrary: bodyKeys(op).length ? fc.constantFrom(...bodyKeys(op)) : fc.string() },
        { weight: 1, arbitrary: fc.constantFrom("__proto__", "constructor", "") },
        { weight: 1, arbitrary: fc.string() },
      ),
      fc.oneof(
        valueArb,
        fc.jsonValue({ maxDepth: 3 }),
        fc.boolean(),
        fc.constantFrom<unknown>(...ROLES, "root", null, 0, [], {}),
        fc.emailAddress(),
        fc.string({ minLength: 10, maxLength: 40 }),
      ),
      { maxKeys: 5 },
    )
    .map((v) => JSON.stringify(v));

function serialise(v: unknown): string {
  try {
    return JSON.stringify(v) ?? String(v);
  } catch {
    return String(v);
  }
}

/** As the server reads a body: UTF-8 decoding drops one leading byte order mark. */
const isJson = (s: string) => {
  try {
    JSON.parse(s.startsWith("\uFEFF") ? s.slice(1) : s);
    return true;
  } catch {
    return false;
  }
};

/** Text that is not JSON: random strings, truncated or damaged JSON, JavaScript literals. */
const notJsonArb = fc
  .oneof(
    fc.string({ unit: "binary", minLength: 1, maxLength: 200 }),
    fc.string({ unit: "grapheme-ascii", minLength: 1, maxLength: 200 }),
    fc
      .tuple(
        fc.jsonValue().map((v) => JSON.stringify(v)),
        fc.nat(),
      )
      .map(([s, n]) => s.slice(0, Math.max(0, s.length - 1 - (n % Math.max(1, s.length))))),
    fc.jsonValue().map((v) => `${JSON.stringify(v)},`),
    fc.constantFrom(
      "{",
      "}",
      "{'a':1}",
      '{"a":1,}',
      "{a:1}",
      "undefined",
      "NaN",
      "[1,]",
      '"unterminated',
      "\u0000",
      // A leading byte order mark is dropped by UTF-8 decoding (RFC 8259 lets parsers ignore it), so "\uFEFF{}"
      // is an empty object: only a broken text after it is not JSON.
      "\uFEFF{",
      '{"email":"a@b.c","password":"x"',
      `${"[".repeat(5000)}`,
    ),
  )
  .filter((s) => !isJson(s));

/** Content types that are not JSON, for routes whose body must be JSON. */
const NOT_JSON_TYPES = [
  "text/plain",
  "text/plain;charset=UTF-8",
  "application/x-www-form-urlencoded",
  "multipart/form-data; boundary=xyz",
  "application/xml",
  "application/octet-stream",
  "text/html",
  "text/json",
  "application/jsonx",
  "application/json5",
  "image/png",
];
/** Anything a client may put in the header (printable ASCII: fetch refuses the rest). */
const headerValueArb = fc.string({ unit: fc.integer({ min: 0x20, max: 0x7e }).map((c) => String.fromCharCode(c)) });

/** encodeURIComponent, which throws on lone surrogates: those become U+FFFD, as a browser would send them. */
const encodeText = (s: string) =>
  encodeURIComponent(
    s.replace(/[\uD800-\uDFFF]/g, (c, i: number) => {
      const code = c.charCodeAt(0);
      const pairNext = code < 0xdc00 && /[\uDC00-\uDFFF]/.test(s[i + 1] ?? "");
      const pairPrev = code >= 0xdc00 && /[\uD800-\uDBFF]/.test(s[i - 1] ?? "");
      return pairNext || pairPrev ? c : "\uFFFD";
    }),
  );

/** A query string: known and random keys, repeated keys, unicode, control characters and long values. */
const queryArb = (op: Op) => {
  const known = op.queryNames.length ? op.queryNames : ["q", "page", "limit"];
  const keyArb = fc.oneof(
    { weight: 3, arbitrary: fc.constantFrom(...known) },
    { weight: 1, arbitrary: fc.string({ unit: "grapheme", maxLength: 20 }) },
    { weight: 1, arbitrary: fc.constantFrom("__proto__", "constructor", "a[]", "a[b]", "", "toString") },
  );
  const pairs = fc.oneof(
    // valid parameters but one, which gets a fuzzed value: this is what reaches the handler and the database
    fc
      .tuple(validQuery(op), fc.constantFrom(...known), valueArb)
      .map(([valid, k, v]) => [...valid.filter(([name]) => name !== k), [k, v] as [string, string]]),
    fc.array(fc.tuple(keyArb, valueArb), { maxLength: 8 }),
    // one key, many values: ?limit=1&limit=2
    fc
      .tuple(fc.constantFrom(...known), fc.array(valueArb, { minLength: 2, maxLength: 5 }))
      .map(([k, vs]) => vs.map((v) => [k, v] as [string, string])),
  );
  return fc.tuple(pairs, fc.constantFrom("encoded", "raw", "mixed")).map(([list, mode]) => {
    const enc = (s: string, i: number) =>
      mode === "encoded" || (mode === "mixed" && i % 2 === 0) ? encodeText(s) : s.replace(/#/g, "%23");
    // measured as sent: fetch percent-encodes what was left raw
    const sentLength = (q: string) => new URL(`http://h/?${q}`).search.length;
    let q = "";
    for (const [i, [k, v]] of list.entries()) {
      const next = `${q ? `${q}&` : ""}${enc(k, i)}=${enc(v, i + 1)}`;
      if (sentLength(next) > QUERY_BUDGET) {
        if (!q) q = `${enc(k, i)}=${enc(v.slice(0, 1000), i + 1)}`;
        break;
      }
      q = next;
    }
    return q;
  });
};

async function assertProperty<T>(arb: fc.Arbitrary<T>, run: (v: T) => Promise<void>, numRuns = RUNS) {
  await fc.assert(fc.asyncProperty(arb, run), { numRuns });
}

// ---------------------------------------------------------------------------------------------------------------
// Properties

describe("fuzzing every route of the OpenAPI document", () => {
  it("keeps its only admin: fuzzed role changes and disabling of that account are refused", async () => {
    // The fuzzing PATCHes the admin's own id (and creates learners only): this guard keeps the admin session usable.
    for (const patch of [{ role: "learner" }, { role: "teacher" }, { disabled: true }]) {
      const r: FuzzRequest = {
        method: "PATCH",
        target: `/api/v1/admin/users/${adminId}`,
        auth: "admin",
        body: JSON.stringify(patch),
      };
      const { answer, code } = await fuzz(r);
      expect(answer.status).toBe(409);
      expect(code).toBe("last_admin");
    }
  });

  it("survives random JSON values as bodies, with authorisation checked first", { timeout: TIMEOUT }, async () => {
    const arb = target((o) => WITH_BODY.has(o.method)).chain(({ auth, op }) =>
      fc.record({
        auth: fc.constant(auth),
        op: fc.constant(op),
        path: pathFor(op),
        body: fc.oneof(
          fc.jsonValue().map((v) => JSON.stringify(v)),
          schemaBody(op),
          { weight: 2, arbitrary: nearValidBody(op) },
        ),
      }),
    );
    await assertProperty(arb, async ({ auth, op, path, body }) => {
      const r: FuzzRequest = { method: op.method, target: path, auth, body };
      const { answer, code } = await fuzz(r);
      expectGate(r, op, answer, code);
    });
  });

  it("survives anything serialised, with authorisation checked first", { timeout: TIMEOUT }, async () => {
    const arb = target((o) => WITH_BODY.has(o.method)).chain(({ auth, op }) =>
      fc.record({
        auth: fc.constant(auth),
        op: fc.constant(op),
        path: pathFor(op),
        body: fc
          .anything({
            withBoxedValues: true,
            withMap: true,
            withSet: true,
            withDate: true,
            withTypedArray: true,
            withSparseArray: true,
            withNullPrototype: true,
            withObjectString: true,
          })
          .map(serialise),
      }),
    );
    await assertProperty(arb, async ({ auth, op, path, body }) => {
      const r: FuzzRequest = { method: op.method, target: path, auth, body };
      const { answer, code } = await fuzz(r);
      expectGate(r, op, answer, code);
    });
  });

  it("answers 400 invalid_input to bodies that are not JSON", { timeout: TIMEOUT }, async () => {
    const arb = target((o) => WITH_BODY.has(o.method)).chain(({ auth, op }) =>
      fc.record({ auth: fc.constant(auth), op: fc.constant(op), path: pathFor(op), body: notJsonArb }),
    );
    await assertProperty(arb, async ({ auth, op, path, body }) => {
      const r: FuzzRequest = { method: op.method, target: path, auth, body };
      const { answer, code } = await fuzz(r);
      if (expectGate(r, op, answer, code)) return;
      if (op.hasBody && (answer.status !== 400 || code !== "invalid_input")) fail(r, answer, "expected invalid_input");
    });
  });

  it("refuses content types other than JSON with 415", { timeout: TIMEOUT }, async () => {
    const arb = target((o) => WITH_BODY.has(o.method)).chain(({ auth, op }) =>
      fc.record({
        auth: fc.constant(auth),
        op: fc.constant(op),
        path: pathFor(op),
        contentType: fc.oneof(
          { weight: 3, arbitrary: fc.constantFrom(...NOT_JSON_TYPES) },
          { weight: 1, arbitrary: fc.constant(null) },
          { weight: 1, arbitrary: headerValueArb },
        ),
        body: fc.oneof(schemaBody(op), notJsonArb, fc.uint8Array({ minLength: 1, maxLength: 300 })),
      }),
    );
    await assertProperty(arb, async ({ auth, op, path, contentType, body }) => {
      const r: FuzzRequest = { method: op.method, target: path, auth, body, contentType };
      const { answer, code } = await fuzz(r);
      if (expectGate(r, op, answer, code)) return;
      const known = contentType === null ? body.length > 0 : NOT_JSON_TYPES.includes(contentType);
      if (op.hasBody && known && (answer.status !== 415 || code !== "unsupported_media_type")) {
        fail(r, answer, "expected unsupported_media_type");
      }
    });
  });

  it("refuses bodies over the limit with 413, declared or chunked, before anything else", {
    timeout: TIMEOUT,
  }, async () => {
    const arb = target((o) => WITH_BODY.has(o.method)).chain(({ auth, op }) => {
      const limit = op.bodyLimit ?? server.config.bodyLimit;
      return fc.record({
        auth: fc.constant(auth),
        op: fc.constant(op),
        path: pathFor(op),
        size: fc.integer({ min: limit + 1, max: limit * 4 }),
        mode: fc.constantFrom("declared", "chunked"),
        contentType: fc.constantFrom<string | undefined>(undefined, "text/plain", "application/octet-stream"),
      });
    });
    await assertProperty(
      arb,
      async ({ auth, op, path, size, mode, contentType }) => {
        const body =
          mode === "chunked" ? { stream: size } : encoder.encode(`{"email":"${"a".repeat(size - 12)}"}`.slice(0, size));
        const r: FuzzRequest = { method: op.method, target: path, auth, body, contentType };
        const { answer, code } = await fuzz(r);
        if (answer.status !== 413 || code !== "payload_too_large") fail(r, answer, "expected payload_too_large");
      },
      60,
    );
  });

  it("takes a body of exactly the limit, and refuses one byte more", async () => {
    const limit = server.config.bodyLimit;
    const body = (n: number) => `{"email":"${"a".repeat(n - 12)}"}`;
    expect(body(limit)).toHaveLength(limit);
    const at = await fuzz({ method: "POST", target: "/api/v1/auth/login", auth: "anonymous", body: body(limit) });
    expect(at.answer.status).toBe(400);
    expect(at.code).toBe("invalid_input");
    const over = await fuzz({
      method: "POST",
      target: "/api/v1/auth/login",
      auth: "anonymous",
      body: body(limit + 1),
    });
    expect(over.answer.status).toBe(413);
    expect(over.code).toBe("payload_too_large");
  });

  it("survives awkward text in one field of otherwise valid input", { timeout: TIMEOUT }, async () => {
    const arb = target((o) => textFields(o).length > 0).chain(({ auth, op }) =>
      fc.record({
        auth: fc.constant(auth),
        op: fc.constant(op),
        path: pathFor(op),
        body: fc.record(Object.fromEntries(bodyKeys(op).map((k) => [k, validValue(op.bodyProps[k] ?? {})]))),
        query: validQuery(op),
        field: fc.constantFrom(...textFields(op)),
        text: fc.oneof({ weight: 3, arbitrary: hostileTextArb }, { weight: 1, arbitrary: valueArb }),
      }),
    );
    await assertProperty(arb, async ({ auth, op, path, body, query, field, text }) => {
      const q = new URLSearchParams(query.filter(([k]) => k !== field.name));
      // (long URLs are the business of the query-string property, which keeps them under Node's header limit)
      if (field.where === "query") q.append(field.name, text.slice(0, 1000).replace(/[\uD800-\uDFFF]/g, "\uFFFD"));
      const b: Record<string, unknown> = { ...body };
      if (field.where === "body") b[field.name] = text;
      const r: FuzzRequest = {
        method: op.method,
        target: q.size ? `${path}?${q}` : path,
        auth,
        body: WITH_BODY.has(op.method) ? JSON.stringify(b) : undefined,
      };
      const { answer, code } = await fuzz(r);
      expectGate(r, op, answer, code);
    });
  });

  it("survives random query strings: repeated keys, unicode, long values", { timeout: TIMEOUT }, async () => {
    // Routes that read their query string get most of the runs.
    const arb = fc
      .oneof({ weight: 3, arbitrary: target((o) => o.queryNames.length > 0) }, { weight: 1, arbitrary: target() })
      .chain(({ auth, op }) =>
        fc.record({ auth: fc.constant(auth), op: fc.constant(op), path: pathFor(op), query: queryArb(op) }),
      );
    await assertProperty(arb, async ({ auth, op, path, query }) => {
      const r: FuzzRequest = {
        method: op.method,
        target: `${path}?${query}`,
        auth,
        body: WITH_BODY.has(op.method) ? "{}" : undefined,
      };
      const { answer, code } = await fuzz(r);
      expectGate(r, op, answer, code);
    });
  });

  it("survives random values for path parameters", { timeout: TIMEOUT }, async () => {
    const arb = target((o) => o.pathParams.length > 0).chain(({ auth, op }) =>
      fc.record({ auth: fc.constant(auth), op: fc.constant(op), path: pathFor(op, true) }),
    );
    await assertProperty(arb, async ({ auth, op, path }) => {
      const r: FuzzRequest = {
        method: op.method,
        target: path,
        auth,
        body: WITH_BODY.has(op.method) ? "{}" : undefined,
      };
      await fuzz(r);
    });
  });

  it("survives random paths and methods, inside and outside the API", { timeout: TIMEOUT }, async () => {
    const known = [...new Set(ops.flatMap((o) => o.path.split("/")).filter((s) => s && !s.startsWith("{")))];
    const prefixes = [
      "/",
      "/api/",
      "/api/v1/",
      "/api/v2/",
      "/api/v1/auth/",
      "/api/v1/admin/",
      "/api/docs/",
      "/assets/",
      "//",
      ...ops.map((o) => `${o.path.replace(/\{[^}]+\}/g, "x")}/`),
    ];
    const arb = fc.record({
      auth: authArb,
      method: fc.constantFrom("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"),
      prefix: fc.constantFrom(...prefixes),
      segments: fc.array(fc.oneof(segmentArb, fc.constantFrom(...known)), { maxLength: 5 }),
      trailingSlash: fc.boolean(),
      body: fc.option(
        fc.oneof(
          fc.jsonValue().map((v) => JSON.stringify(v)),
          notJsonArb,
        ),
        { nil: undefined },
      ),
    });
    await assertProperty(arb, async ({ auth, method, prefix, segments, trailingSlash, body }) => {
      const target = `${prefix}${segments.join("/")}${trailingSlash ? "/" : ""}`;
      const ending = SESSION_ENDING.has(routedPath(target).replace(/\/+$/, ""));
      const r: FuzzRequest = {
        method,
        target,
        // Never end a kept session: such a path is fuzzed anonymously.
        auth: ending ? "anonymous" : auth,
        body: WITH_BODY.has(method) ? body : undefined,
      };
      await fuzz(r);
    });
  });

  it("still has an intact audit chain and its only admin after the fuzzing", async () => {
    const headers = { cookie: cookies.admin };
    const verify = await fetch(`${server.url}/api/v1/admin/audit/verify`, { headers });
    expect(verify.status).toBe(200);
    expect(await verify.json()).toMatchObject({ ok: true, firstBadId: null });
    const admins = await fetch(`${server.url}/api/v1/admin/users?role=admin`, { headers });
    const page = (await admins.json()) as { items: { id: string; disabled: boolean }[] };
    expect(page.items.filter((u) => !u.disabled).map((u) => u.id)).toContain(adminId);
  });
});
