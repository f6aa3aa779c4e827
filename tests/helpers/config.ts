import { randomBytes } from "node:crypto";
import type { Config } from "../../server/config.ts";
import { formatKeyList } from "../../server/crypto/keyring.ts";

/** A config for tests: in-memory PGlite, port 0, fresh random secrets, generous limits, silent logs. */
export function testConfig(overrides: Partial<Config> = {}): Config {
  return {
    env: "test",
    port: 0,
    host: "127.0.0.1",
    dataDir: "memory",
    databaseUrl: undefined,
    databasePoolSize: 5,
    redisUrl: undefined,
    corsOrigins: [],
    trustProxy: false,
    adminEmail: undefined,
    secrets: {
      jwtSecret: randomBytes(32).toString("base64url"),
      encryptionKeys: formatKeyList([{ id: "t1", key: randomBytes(32) }]),
      blindIndexKey: randomBytes(32).toString("base64url"),
    },
    session: { idleTimeoutSec: 3600, maxAgeSec: 24 * 3600, cacheTtlSec: 5 },
    tokenTtlSec: 300,
    bodyLimit: 64 * 1024,
    rateLimits: {
      perIp: 100_000,
      perUser: 100_000,
      socketEventsPerUser: 100_000,
      chatPerRoom: 100_000,
      loginFailures: 5,
      loginFailuresPerIp: 1000,
      lockoutSec: 900,
    },
    logLevel: (process.env.TEST_LOG_LEVEL as Config["logLevel"] | undefined) ?? "silent",
    clientDir: "./client/dist",
    notebookIdleMs: 2000,
    wsWriteHoldMs: 5,
    tutor: {
      llm: undefined,
      idleTimeoutMs: 5000,
      totalTimeoutMs: 20_000,
      maxAnswerTokens: 400,
      maxPromptTokens: 3000,
      offlineDelayMs: 0,
      cacheTtlMs: 60_000,
    },
    ...overrides,
  };
}
