import { z } from "zod";

const bool = z.enum(["true", "false", "1", "0"]).transform((v) => v === "true" || v === "1");
const seconds = z.coerce.number().int().positive();
const list = z.string().transform((s) =>
  s
    .split(",")
    .map((x) => x.trim())
    .filter(Boolean),
);
const url = (protocols: string[]) =>
  z.url().refine((u) => protocols.some((p) => u.startsWith(`${p}:`)), {
    message: `must start with ${protocols.map((p) => `${p}://`).join(" or ")}`,
  });

/** Every environment variable the server reads, with its default. README's configuration table mirrors it. */
const Env = z.object({
  NODE_ENV: z.enum(["development", "production", "test"]).default("development"),
  PORT: z.coerce.number().int().min(0).max(65535).default(3000),
  HOST: z.string().min(1).default("0.0.0.0"),
  DATA_DIR: z.string().min(1).default("./data"),
  DATABASE_URL: url(["postgres", "postgresql"]).optional(),
  DATABASE_POOL_SIZE: z.coerce.number().int().min(1).max(200).default(10),
  REDIS_URL: url(["redis", "rediss"]).optional(),
  CORS_ORIGINS: list.default([]),
  TRUST_PROXY: bool.default(false),
  ADMIN_EMAIL: z.email().optional(),
  JWT_SECRET: z.string().min(32, "must be at least 32 characters").optional(),
  ENCRYPTION_KEYS: z.string().min(1).optional(),
  BLIND_INDEX_KEY: z.string().min(32, "must be at least 32 characters").optional(),
  SESSION_IDLE_TIMEOUT: seconds.default(14 * 24 * 3600),
  SESSION_MAX_AGE: seconds.default(90 * 24 * 3600),
  SESSION_CACHE_TTL: z.coerce.number().int().min(0).max(60).default(5),
  TOKEN_TTL: seconds.max(3600, "access tokens are short-lived: at most 3600 s").default(600),
  BODY_LIMIT: z.coerce
    .number()
    .int()
    .min(1024)
    .max(50 * 1024 * 1024)
    .default(64 * 1024),
  RATE_LIMIT_IP: z.coerce.number().int().positive().default(600),
  RATE_LIMIT_USER: z.coerce.number().int().positive().default(300),
  RATE_LIMIT_SOCKET_USER: z.coerce.number().int().positive().default(100),
  RATE_LIMIT_CHAT_ROOM: z.coerce.number().int().positive().default(300),
  LOGIN_MAX_FAILURES: z.coerce.number().int().positive().default(5),
  LOGIN_MAX_FAILURES_IP: z.coerce.number().int().positive().default(100),
  LOGIN_LOCKOUT: seconds.default(15 * 60),
  LOG_LEVEL: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info"),
  CLIENT_DIR: z.string().min(1).default("./client/dist"),
  LLM_BASE_URL: url(["http", "https"]).optional(),
  LLM_API_KEY: z.string().min(1).optional(),
  LLM_MODEL: z.string().min(1).max(200).optional(),
  LLM_EMBEDDINGS_MODEL: z.string().min(1).max(200).optional(),
  LLM_IDLE_TIMEOUT: seconds.max(600).default(30),
  LLM_TIMEOUT: seconds.max(3600).default(120),
  TUTOR_MAX_ANSWER_TOKENS: z.coerce.number().int().min(16).max(32_000).default(800),
  TUTOR_MAX_PROMPT_TOKENS: z.coerce.number().int().min(256).max(200_000).default(3000),
  TUTOR_OFFLINE_DELAY_MS: z.coerce.number().int().min(0).max(1000).default(20),
  TUTOR_CACHE_TTL: seconds.max(30 * 24 * 3600).default(24 * 3600),
  NOTEBOOK_IDLE_MS: z.coerce.number().int().min(0).max(3_600_000).default(10_000),
  WS_WRITE_HOLD_MS: z.coerce.number().int().min(0).max(100).default(5),
});

export interface RateLimitConfig {
  /** API requests per IP per minute */
  perIp: number;
  /** API requests per authenticated user per minute */
  perUser: number;
  /** socket events per user per 10 s, whatever the event */
  socketEventsPerUser: number;
  /** chat messages per room per 10 s, whoever sends them */
  chatPerRoom: number;
  /** consecutive login failures for one account from one IP before a lockout */
  loginFailures: number;
  /** login failures from one IP (any account) per day before a lockout */
  loginFailuresPerIp: number;
  /** lockout length in seconds */
  lockoutSec: number;
}

/** Raw secrets as given in the environment; `server/secrets.ts` turns them into keys. */
export interface SecretInput {
  jwtSecret?: string | undefined;
  encryptionKeys?: string | undefined;
  blindIndexKey?: string | undefined;
}

/** Parsed configuration, built once at start and passed down; tests build it with `testConfig()`. */
export interface Config {
  env: "development" | "production" | "test";
  port: number;
  host: string;
  /** directory of PGlite's files and of generated secrets; `memory` keeps everything in memory */
  dataDir: string;
  databaseUrl?: string | undefined;
  databasePoolSize: number;
  redisUrl?: string | undefined;
  corsOrigins: string[];
  trustProxy: boolean;
  adminEmail?: string | undefined;
  secrets: SecretInput;
  /** `cacheTtlSec`: how long a validated session is served from memory (0: always ask the database) */
  session: { idleTimeoutSec: number; maxAgeSec: number; cacheTtlSec: number };
  tokenTtlSec: number;
  bodyLimit: number;
  rateLimits: RateLimitConfig;
  logLevel: "fatal" | "error" | "warn" | "info" | "debug" | "trace" | "silent";
  clientDir: string;
  /** how long a notebook stays in memory after its last connection closed, in ms */
  notebookIdleMs: number;
  /** while the event loop is busy, a WebSocket written to less than this many ms ago waits until then (0: never) */
  wsWriteHoldMs: number;
  tutor: TutorConfig;
}

/** The tutor's model. Without `llm`, the offline tutor answers from the course. */
export interface TutorConfig {
  llm?: { baseUrl: string; apiKey?: string | undefined; model: string } | undefined;
  /** an embeddings model at the same endpoint: retrieval becomes hybrid */
  embeddingsModel?: string | undefined;
  idleTimeoutMs: number;
  totalTimeoutMs: number;
  maxAnswerTokens: number;
  maxPromptTokens: number;
  /** pause between the offline tutor's words, so that its answers stream like a model's */
  offlineDelayMs: number;
  /** how long a cached answer is reused (rooms with the answer cache on) */
  cacheTtlMs: number;
}

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`Invalid configuration:\n${problems.map((p) => `  - ${p}`).join("\n")}`);
    this.name = "ConfigError";
  }
}

/** Parses the environment; throws a ConfigError listing every bad variable by name. */
export function loadConfig(env: Record<string, string | undefined>): Config {
  // Empty strings mean "unset": `FOO= npm start` should not fail validation.
  const cleaned = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== ""));
  const parsed = Env.safeParse(cleaned);
  if (!parsed.success) {
    throw new ConfigError(parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`));
  }
  const e = parsed.data;
  if (e.LLM_BASE_URL && !e.LLM_MODEL) throw new ConfigError(["LLM_MODEL: required when LLM_BASE_URL is set"]);
  return {
    env: e.NODE_ENV,
    port: e.PORT,
    host: e.HOST,
    dataDir: e.DATA_DIR,
    databaseUrl: e.DATABASE_URL,
    databasePoolSize: e.DATABASE_POOL_SIZE,
    redisUrl: e.REDIS_URL,
    corsOrigins: e.CORS_ORIGINS,
    trustProxy: e.TRUST_PROXY,
    adminEmail: e.ADMIN_EMAIL?.toLowerCase(),
    secrets: { jwtSecret: e.JWT_SECRET, encryptionKeys: e.ENCRYPTION_KEYS, blindIndexKey: e.BLIND_INDEX_KEY },
    session: { idleTimeoutSec: e.SESSION_IDLE_TIMEOUT, maxAgeSec: e.SESSION_MAX_AGE, cacheTtlSec: e.SESSION_CACHE_TTL },
    tokenTtlSec: e.TOKEN_TTL,
    bodyLimit: e.BODY_LIMIT,
    rateLimits: {
      perIp: e.RATE_LIMIT_IP,
      perUser: e.RATE_LIMIT_USER,
      socketEventsPerUser: e.RATE_LIMIT_SOCKET_USER,
      chatPerRoom: e.RATE_LIMIT_CHAT_ROOM,
      loginFailures: e.LOGIN_MAX_FAILURES,
      loginFailuresPerIp: e.LOGIN_MAX_FAILURES_IP,
      lockoutSec: e.LOGIN_LOCKOUT,
    },
    logLevel: e.LOG_LEVEL,
    clientDir: e.CLIENT_DIR,
    notebookIdleMs: e.NOTEBOOK_IDLE_MS,
    wsWriteHoldMs: e.WS_WRITE_HOLD_MS,
    tutor: {
      llm: e.LLM_BASE_URL
        ? { baseUrl: e.LLM_BASE_URL, apiKey: e.LLM_API_KEY, model: e.LLM_MODEL as string }
        : undefined,
      embeddingsModel: e.LLM_BASE_URL ? e.LLM_EMBEDDINGS_MODEL : undefined,
      idleTimeoutMs: e.LLM_IDLE_TIMEOUT * 1000,
      totalTimeoutMs: e.LLM_TIMEOUT * 1000,
      maxAnswerTokens: e.TUTOR_MAX_ANSWER_TOKENS,
      maxPromptTokens: e.TUTOR_MAX_PROMPT_TOKENS,
      offlineDelayMs: e.TUTOR_OFFLINE_DELAY_MS,
      cacheTtlMs: e.TUTOR_CACHE_TTL * 1000,
    },
  };
}
