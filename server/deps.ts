import { randomUUID } from "node:crypto";
import { fileURLToPath } from "node:url";
import { Redis } from "ioredis";
import { type DbHandle, openDb } from "../db/client.ts";
import { AuditLog } from "./audit/audit-log.ts";
import { AccountService } from "./auth/accounts.ts";
import { LoginGuard } from "./auth/login-guard.ts";
import { type InvalidationBus, localBus, redisBus, SessionCache } from "./auth/session-cache.ts";
import { SessionService } from "./auth/sessions.ts";
import { TokenService } from "./auth/tokens.ts";
import type { Config } from "./config.ts";
import type { Logger } from "./log.ts";
import { NotebookHub } from "./notebooks/hub.ts";
import { NotebookService } from "./notebooks/notebook-service.ts";
import { localRelay, redisRelay } from "./notebooks/relay.ts";
import { NotebookStore } from "./notebooks/store.ts";
import { createLimiters, type Limiters } from "./ratelimit/limiters.ts";
import { closeRedis } from "./redis-close.ts";
import { ChatService } from "./rooms/chat.ts";
import { RoomService } from "./rooms/rooms.ts";
import { loadSecrets, type Secrets } from "./secrets.ts";
import { SettingsService } from "./settings/settings.ts";
import { memoryAnswerCache, redisAnswerCache } from "./tutor/answer-cache.ts";
import { CourseService } from "./tutor/course-service.ts";
import { EmbeddingCache, OpenAiEmbedder } from "./tutor/embeddings.ts";
import { ExperimentService } from "./tutor/experiments.ts";
import { TutorLimits } from "./tutor/limits.ts";
import { memoryAnswerLog, memoryLocks, redisAnswerLog, redisLocks } from "./tutor/live.ts";
import { TutorModels } from "./tutor/models.ts";
import { TutorRetriever } from "./tutor/retriever.ts";
import { TutorService } from "./tutor/tutor-service.ts";
import { UserAdmin } from "./users/user-admin.ts";

/** Everything the HTTP and realtime layers need, built once by the composition root. */
export interface Deps {
  config: Config;
  log: Logger;
  dbh: DbHandle;
  redis: Redis | undefined;
  secrets: Secrets;
  accounts: AccountService;
  sessions: SessionService;
  tokens: TokenService;
  audit: AuditLog;
  users: UserAdmin;
  limiters: Limiters;
  loginGuard: LoginGuard;
  /** session and user invalidations, delivered on every node (the realtime layer disconnects on them) */
  invalidations: InvalidationBus;
  settings: SettingsService;
  rooms: RoomService;
  chat: ChatService;
  /** the Python course in content/, loaded on first use */
  course: CourseService;
  tutor: TutorService;
  /** the tutor's model settings (environment or admin) */
  tutorModels: TutorModels;
  experiments: ExperimentService;
  /** this process's id among the nodes (heartbeats, notebook relay) */
  nodeId: string;
  /** the rooms' shared notebooks: store, the documents open on this node, HTTP operations */
  notebooks: NotebookService;
  /** closes the database and Redis */
  close(): Promise<void>;
}

export async function createDeps(config: Config, log: Logger): Promise<Deps> {
  const secrets = await loadSecrets(config, log);
  const dbh = await openDb({
    databaseUrl: config.databaseUrl,
    dataDir: config.dataDir,
    poolSize: config.databasePoolSize,
  });
  let redis: Redis | undefined;
  if (config.redisUrl) {
    // No offline queue: when Redis is down, calls fail fast instead of piling up (rate-limiter-flexible advice).
    redis = new Redis(config.redisUrl, {
      enableOfflineQueue: false,
      maxRetriesPerRequest: 1,
      lazyConnect: true,
      showFriendlyErrorStack: true,
    });
    redis.on("error", (err) => log.warn({ err: err.message }, "redis error"));
    await redis.connect();
  }
  const db = dbh.db;
  const bus: InvalidationBus = redis
    ? await redisBus(redis, (err) => log.warn({ err: String(err) }, "session invalidation bus error"))
    : localBus();
  const sessions = new SessionService(db, config.session, new SessionCache(config.session.cacheTtlSec * 1000, bus));
  const accounts = new AccountService(db, secrets.keyring, config.adminEmail);
  const limiters = createLimiters(config.rateLimits, redis);
  const settings = new SettingsService(db);
  const rooms = new RoomService(db, settings, bus);
  const course = new CourseService(fileURLToPath(new URL("../content", import.meta.url)));
  const experiments = new ExperimentService(db);
  const tutorModels = new TutorModels(db, secrets.keyring, config.tutor, course);
  const tutor = new TutorService({
    db,
    rooms,
    settings,
    course,
    config: config.tutor,
    log,
    answerLog: redis ? redisAnswerLog(redis) : memoryAnswerLog(),
    locks: redis ? redisLocks(redis) : memoryLocks(),
    limits: new TutorLimits(redis, log),
    models: tutorModels,
    experiments,
    cache: redis ? redisAnswerCache(redis) : memoryAnswerCache(),
    retriever: new TutorRetriever(
      course,
      log,
      config.tutor.llm && config.tutor.embeddingsModel
        ? {
            embedder: new OpenAiEmbedder({
              baseUrl: config.tutor.llm.baseUrl,
              apiKey: config.tutor.llm.apiKey,
              model: config.tutor.embeddingsModel,
              timeoutMs: config.tutor.idleTimeoutMs,
            }),
            cache: new EmbeddingCache(db),
          }
        : undefined,
    ),
  });
  const nodeId = randomUUID();
  const notebookStore = new NotebookStore(db);
  const notebooks = new NotebookService(
    notebookStore,
    new NotebookHub(notebookStore, redis ? redisRelay(redis, log, nodeId) : localRelay(), log, {
      idleMs: config.notebookIdleMs,
    }),
    rooms,
    bus,
  );
  return {
    config,
    log,
    dbh,
    redis,
    secrets,
    accounts,
    sessions,
    tokens: new TokenService(secrets.jwtKey, config.tokenTtlSec),
    audit: new AuditLog(db),
    users: new UserAdmin(db, accounts, sessions),
    limiters,
    loginGuard: new LoginGuard(limiters, config.rateLimits.lockoutSec),
    invalidations: bus,
    settings,
    rooms,
    chat: new ChatService(db, dbh.statements, rooms),
    course,
    tutor,
    tutorModels,
    experiments,
    nodeId,
    notebooks,
    async close() {
      // Every accepted notebook update is stored before the database closes.
      await notebooks.hub.close();
      await bus.close();
      await closeRedis(redis);
      await dbh.close();
    },
  };
}
