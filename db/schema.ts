import { sql } from "drizzle-orm";
import {
  bigserial,
  boolean,
  index,
  integer,
  jsonb,
  pgTable,
  primaryKey,
  text,
  timestamp,
  uniqueIndex,
  uuid,
} from "drizzle-orm/pg-core";

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
    chatLocked: boolean("chat_locked").notNull().default(false),
    /** the `seq` of the room's latest message: incremented by each message, in the same statement */
    lastSeq: integer("last_seq").notNull().default(0),
    endedAt: ts("ended_at"),
    archivedAt: ts("archived_at"),
    createdAt: ts("created_at").notNull().defaultNow(),
    updatedAt: ts("updated_at").notNull().defaultNow(),
  },
  (t) => [index("rooms_owner_idx").on(t.ownerId)],
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
