import { sql } from "drizzle-orm";
import {
  bigserial,
  boolean,
  customType,
  index,
  integer,
  jsonb,
  pgTable,
  primaryKey,
  real,
  text,
  timestamp,
  uniqueIndex,
  uuid,
} from "drizzle-orm/pg-core";

/** Binary columns: `pg` hands back a Buffer, PGlite a Uint8Array; both are Uint8Arrays to us. */
const bytea = customType<{ data: Uint8Array; driverData: Uint8Array }>({
  dataType: () => "bytea",
  fromDriver: (value) => new Uint8Array(value.buffer, value.byteOffset, value.byteLength),
});

const ts = (name: string) => timestamp(name, { withTimezone: true, mode: "date" });

/** Accounts. The email is stored encrypted (`emailEnc`) and looked up through a keyed blind index. */
export const users = pgTable(
  "users",
  {
    id: uuid("id").primaryKey().defaultRandom(),
    emailEnc: text("email_enc").notNull(),
    emailIndex: text("email_index").notNull().unique(),
    displayName: text("display_name").notNull(),
    passwordHash: text("password_hash").notNull(),
    role: text("role", { enum: ["learner", "teacher", "admin"] })
      .notNull()
      .default("learner"),
    disabled: boolean("disabled").notNull().default(false),
    createdAt: ts("created_at").notNull().defaultNow(),
    updatedAt: ts("updated_at").notNull().defaultNow(),
  },
  (t) => [index("users_role_idx").on(t.role), index("users_created_idx").on(t.createdAt)],
);

/**
 * Browser sessions (Lucia's guide): the client holds `<id>.<secret>`, we keep only SHA-256(secret).
 * `lastUsedAt` drives the inactivity expiry, `expiresAt` is the absolute end of life.
 */
export const sessions = pgTable(
  "sessions",
  {
    id: text("id").primaryKey(),
    secretHash: text("secret_hash").notNull(),
    userId: uuid("user_id")
      .notNull()
      .references(() => users.id, { onDelete: "cascade" }),
    createdAt: ts("created_at").notNull().defaultNow(),
    lastUsedAt: ts("last_used_at").notNull().defaultNow(),
    expiresAt: ts("expires_at").notNull(),
    ip: text("ip"),
    userAgent: text("user_agent"),
  },
  (t) => [index("sessions_user_idx").on(t.userId)],
);

/** Append-only, hash-chained audit log (a trigger refuses UPDATE and DELETE). */
export const auditLog = pgTable(
  "audit_log",
  {
    id: bigserial("id", { mode: "number" }).primaryKey(),
    at: ts("at").notNull(),
    actorId: uuid("actor_id"),
    action: text("action").notNull(),
    targetType: text("target_type"),
    targetId: text("target_id"),
    ip: text("ip"),
    userAgent: text("user_agent"),
    requestId: text("request_id"),
    outcome: text("outcome", { enum: ["success", "failure", "denied"] }).notNull(),
    details: jsonb("details").$type<Record<string, unknown>>().notNull().default(sql`'{}'::jsonb`),
    prevHash: text("prev_hash").notNull(),
    hash: text("hash").notNull(),
  },
  (t) => [
    index("audit_action_idx").on(t.action),
    index("audit_actor_idx").on(t.actorId),
    index("audit_target_idx").on(t.targetId),
    index("audit_at_idx").on(t.at),
  ],
);

/** Product settings changed by admins at runtime (one JSON value per key). */
export const appSettings = pgTable("app_settings", {
  key: text("key").primaryKey(),
  value: jsonb("value").notNull(),
  updatedAt: ts("updated_at").notNull().defaultNow(),
});

/** Study rooms. `endedAt` marks a session ended by a moderator: read-only until reopened. */
export const rooms = pgTable(
  "rooms",
  {
    id: uuid("id").primaryKey().defaultRandom(),
    name: text("name").notNull(),
    topic: text("topic").notNull().default(""),
    language: text("language", { enum: ["fr", "en"] })
      .notNull()
      .default("en"),
    ownerId: uuid("owner_id")
      .notNull()
      .references(() => users.id),
    inviteCode: text("invite_code").notNull().unique(),
    /** a learner's own room, alone with the tutor: nobody joins it by code */
    personal: boolean("personal").notNull().default(false),
    chatLocked: boolean("chat_locked").notNull().default(false),
    /** the AI tutor answers questions in this room */
    tutorEnabled: boolean("tutor_enabled").notNull().default(true),
    /** tutor answers wait for a moderator's approval before the room sees them */
    tutorReview: boolean("tutor_review").notNull().default(false),
    /** identical questions with the same context may be answered from the answer cache */
    tutorCache: boolean("tutor_cache").notNull().default(false),
    /** the `seq` of the room's latest message: incremented by each message, in the same statement */
    lastSeq: integer("last_seq").notNull().default(0),
    endedAt: ts("ended_at"),
    archivedAt: ts("archived_at"),
    createdAt: ts("created_at").notNull().defaultNow(),
    updatedAt: ts("updated_at").notNull().defaultNow(),
  },
  (t) => [
    index("rooms_owner_idx").on(t.ownerId),
    uniqueIndex("rooms_personal_owner_idx").on(t.ownerId).where(sql`personal`),
  ],
);

/** Who belongs to a room and as what. A ban keeps the row (`banned`) so that the invite code cannot undo it. */
export const roomMembers = pgTable(
  "room_members",
  {
    roomId: uuid("room_id")
      .notNull()
      .references(() => rooms.id, { onDelete: "cascade" }),
    userId: uuid("user_id")
      .notNull()
      .references(() => users.id, { onDelete: "cascade" }),
    role: text("role", { enum: ["owner", "moderator", "member", "observer"] }).notNull(),
    muted: boolean("muted").notNull().default(false),
    banned: boolean("banned").notNull().default(false),
    /** set while the member's hand is raised (kept across reconnects, seen from every node) */
    handRaisedAt: ts("hand_raised_at"),
    joinedAt: ts("joined_at").notNull().defaultNow(),
  },
  (t) => [primaryKey({ columns: [t.roomId, t.userId] }), index("room_members_user_idx").on(t.userId)],
);

/** Chat messages; `(room_id, seq)` orders a room's history and drives reconnection catch-up. */
export const messages = pgTable(
  "messages",
  {
    id: bigserial("id", { mode: "number" }).primaryKey(),
    roomId: uuid("room_id")
      .notNull()
      .references(() => rooms.id, { onDelete: "cascade" }),
    /** 1, 2, 3, ... within a room, without gaps: a client that misses one knows it */
    seq: integer("seq").notNull(),
    authorId: uuid("author_id")
      .notNull()
      .references(() => users.id),
    body: text("body").notNull(),
    createdAt: ts("created_at").notNull().defaultNow(),
    editedAt: ts("edited_at"),
    deletedAt: ts("deleted_at"),
    deletedBy: uuid("deleted_by"),
  },
  (t) => [uniqueIndex("messages_room_seq_idx").on(t.roomId, t.seq)],
);

/**
 * The tutor's answers, one per question asked in a room. `status` moves queued → streaming → done (or held →
 * done/rejected under review), or ends in failed/cancelled; `text` keeps what was generated, also when it
 * ended early. `deltas` is the number of streamed pieces (the last `seq` of `tutor:delta`).
 */
export const answers = pgTable(
  "answers",
  {
    id: uuid("id").primaryKey().defaultRandom(),
    roomId: uuid("room_id")
      .notNull()
      .references(() => rooms.id, { onDelete: "cascade" }),
    askerId: uuid("asker_id")
      .notNull()
      .references(() => users.id, { onDelete: "cascade" }),
    question: text("question").notNull(),
    /** what the client sent besides the question (level, cell, exercise), for the generation */
    context: jsonb("context").$type<Record<string, unknown>>().notNull().default(sql`'{}'::jsonb`),
    status: text("status", {
      enum: ["queued", "streaming", "held", "done", "failed", "cancelled", "rejected"],
    }).notNull(),
    text: text("text").notNull().default(""),
    /** generated while the room had teacher review on: only moderators see it before approval */
    review: boolean("review").notNull().default(false),
    deltas: integer("deltas").notNull().default(0),
    /** why it ended early: a provider error kind, or `interrupted` when its node died */
    error: text("error"),
    kind: text("kind").notNull(),
    language: text("language", { enum: ["fr", "en"] }).notNull(),
    provider: text("provider"),
    model: text("model"),
    /** the experiment whose variant produced the answer */
    experimentId: uuid("experiment_id"),
    variant: text("variant"),
    sources: jsonb("sources").$type<{ lessonId: string; title: string }[]>().notNull().default(sql`'[]'::jsonb`),
    promptTokens: integer("prompt_tokens"),
    completionTokens: integer("completion_tokens"),
    tokensEstimated: boolean("tokens_estimated"),
    firstTokenMs: integer("first_token_ms"),
    latencyMs: integer("latency_ms"),
    cached: boolean("cached").notNull().default(false),
    cancelledBy: uuid("cancelled_by"),
    reviewedBy: uuid("reviewed_by"),
    reviewedAt: ts("reviewed_at"),
    createdAt: ts("created_at").notNull().defaultNow(),
    startedAt: ts("started_at"),
    finishedAt: ts("finished_at"),
  },
  (t) => [
    index("answers_room_created_idx").on(t.roomId, t.createdAt),
    index("answers_asker_idx").on(t.askerId),
    index("answers_active_idx").on(t.roomId).where(sql`status in ('queued', 'streaming')`),
  ],
);

/** A learner's rating of an answer: one per user and answer, changeable. */
export const answerFeedback = pgTable(
  "answer_feedback",
  {
    answerId: uuid("answer_id")
      .notNull()
      .references(() => answers.id, { onDelete: "cascade" }),
    userId: uuid("user_id")
      .notNull()
      .references(() => users.id, { onDelete: "cascade" }),
    rating: text("rating", { enum: ["up", "down"] }).notNull(),
    comment: text("comment"),
    createdAt: ts("created_at").notNull().defaultNow(),
    updatedAt: ts("updated_at").notNull().defaultNow(),
  },
  (t) => [primaryKey({ columns: [t.answerId, t.userId] })],
);

/** One variant of an experiment: what it changes in the tutor, and its share of the users. */
export interface ExperimentVariantRow {
  id: string;
  weight: number;
  instructions?: string | undefined;
  model?: string | undefined;
  temperature?: number | undefined;
}

/** A/B tests of the tutor: users are assigned a variant deterministically while the experiment runs. */
export const experiments = pgTable("experiments", {
  id: uuid("id").primaryKey().defaultRandom(),
  name: text("name").notNull(),
  description: text("description").notNull().default(""),
  variants: jsonb("variants").$type<ExperimentVariantRow[]>().notNull(),
  status: text("status", { enum: ["running", "stopped"] })
    .notNull()
    .default("running"),
  createdBy: uuid("created_by"),
  createdAt: ts("created_at").notNull().defaultNow(),
  stoppedAt: ts("stopped_at"),
});

/** Embeddings of course passages, by model and content hash: nothing is embedded twice. */
export const embeddings = pgTable(
  "embeddings",
  {
    model: text("model").notNull(),
    hash: text("hash").notNull(),
    vector: real("vector").array().notNull(),
    createdAt: ts("created_at").notNull().defaultNow(),
  },
  (t) => [primaryKey({ columns: [t.model, t.hash] })],
);

/** A room's shared notebook (one per room; a personal room's is the learner's own). */
export const notebooks = pgTable("notebooks", {
  id: uuid("id").primaryKey().defaultRandom(),
  roomId: uuid("room_id")
    .notNull()
    .unique()
    .references(() => rooms.id, { onDelete: "cascade" }),
  /** read-only for everyone but owners and moderators */
  locked: boolean("locked").notNull().default(false),
  createdAt: ts("created_at").notNull().defaultNow(),
});

/**
 * The append log: every Yjs update the server accepted, as the client sent it. Compaction merges a prefix into
 * `notebook_states` and deletes exactly the rows it merged.
 */
export const notebookUpdates = pgTable(
  "notebook_updates",
  {
    id: bigserial("id", { mode: "number" }).primaryKey(),
    notebookId: uuid("notebook_id")
      .notNull()
      .references(() => notebooks.id, { onDelete: "cascade" }),
    data: bytea("data").notNull(),
    createdAt: ts("created_at").notNull().defaultNow(),
  },
  (t) => [index("notebook_updates_notebook_idx").on(t.notebookId, t.id)],
);

/** The compacted document: every update merged so far, as one Yjs update. */
export const notebookStates = pgTable("notebook_states", {
  notebookId: uuid("notebook_id")
    .primaryKey()
    .references(() => notebooks.id, { onDelete: "cascade" }),
  state: bytea("state").notNull(),
  updatedAt: ts("updated_at").notNull().defaultNow(),
});

/** Named versions saved by a teacher; restoring one is a new edit of the live document. */
export const notebookVersions = pgTable(
  "notebook_versions",
  {
    id: uuid("id").primaryKey().defaultRandom(),
    notebookId: uuid("notebook_id")
      .notNull()
      .references(() => notebooks.id, { onDelete: "cascade" }),
    name: text("name").notNull(),
    state: bytea("state").notNull(),
    createdBy: uuid("created_by").references(() => users.id, { onDelete: "set null" }),
    createdAt: ts("created_at").notNull().defaultNow(),
  },
  (t) => [index("notebook_versions_notebook_idx").on(t.notebookId, t.createdAt)],
);
