import { z } from "zod";
import type { ErrorCode, FieldError } from "./errors.ts";
import { LIMITS } from "./limits.ts";
import { type ChatMessage, type Room, type RoomRole, RoomRoleName } from "./schemas/rooms.ts";
import type { Answer, TutorAnswerPayload, TutorAskPayload, TutorDelta, TutorReviewPayload } from "./schemas/tutor.ts";

export { TutorAnswerPayload, TutorAskPayload, TutorReviewPayload } from "./schemas/tutor.ts";

/** Socket.IO path, on the same HTTP server as the API. */
export const SOCKET_PATH = "/socket.io";
/** Largest socket message the server accepts, in bytes (engine.io `maxHttpBufferSize`). */
export const SOCKET_MAX_PAYLOAD = 64 * 1024;

/** The answer of every request-like event, through its acknowledgement callback. */
export type Ack<T> =
  | { ok: true; data: T }
  | { ok: false; error: { code: ErrorCode; message: string; fields?: FieldError[]; retryAfter?: number } };
export type AckFn<T> = (reply: Ack<T>) => void;

/** Ids are case-insensitive in the database but not as channel names: one spelling, lower case. */
const id = z.uuid().toLowerCase();
const body = z
  .string()
  .trim()
  .min(1)
  .max(LIMITS.chatMessageMax)
  .refine((v) => !v.includes("\u0000"), "must not contain U+0000");
const messageId = z.number().int().min(1);

export const RoomJoinPayload = z
  .object({
    roomId: id,
    /**
     * the `seq` up to which this client has every message of the room (its last gap-free one): the ones after
     * it come back in the ack
     */
    lastSeq: z.number().int().min(0).max(LIMITS.seqMax).optional(),
  })
  .strict();
export type RoomJoinPayload = z.infer<typeof RoomJoinPayload>;

export const RoomLeavePayload = z.object({ roomId: id }).strict();
export type RoomLeavePayload = z.infer<typeof RoomLeavePayload>;

export const ChatSendPayload = z.object({ roomId: id, body }).strict();
export type ChatSendPayload = z.infer<typeof ChatSendPayload>;

/** `chat:sync`: the messages after `afterSeq` (a client repairing a gap that did not fill by itself) */
export const ChatSyncPayload = z.object({ roomId: id, afterSeq: z.number().int().min(0).max(LIMITS.seqMax) }).strict();
export type ChatSyncPayload = z.infer<typeof ChatSyncPayload>;

export const ChatEditPayload = z.object({ roomId: id, messageId, body }).strict();
export type ChatEditPayload = z.infer<typeof ChatEditPayload>;
export const ChatDeletePayload = z.object({ roomId: id, messageId }).strict();
export type ChatDeletePayload = z.infer<typeof ChatDeletePayload>;
export const TypingPayload = z.object({ roomId: id, typing: z.boolean() }).strict();
export type TypingPayload = z.infer<typeof TypingPayload>;
export const HandPayload = z.object({ roomId: id, raised: z.boolean() }).strict();
export type HandPayload = z.infer<typeof HandPayload>;
export const MutePayload = z.object({ roomId: id, userId: id, muted: z.boolean() }).strict();
export type MutePayload = z.infer<typeof MutePayload>;
export const RemovePayload = z.object({ roomId: id, userId: id, ban: z.boolean() }).strict();
export type RemovePayload = z.infer<typeof RemovePayload>;
export const LockPayload = z.object({ roomId: id, locked: z.boolean() }).strict();
export type LockPayload = z.infer<typeof LockPayload>;
/** `mod:end` and `mod:reopen` */
export const RoomOnlyPayload = z.object({ roomId: id }).strict();
export type RoomOnlyPayload = z.infer<typeof RoomOnlyPayload>;

export const PresenceUser = z.object({
  userId: id,
  displayName: z.string(),
  role: RoomRoleName,
  handRaised: z.boolean(),
});
export type PresenceUser = z.infer<typeof PresenceUser>;

export interface Presence {
  roomId: string;
  users: PresenceUser[];
}

export interface RoomJoinResult {
  room: Room;
  /** messages after `lastSeq`, in `seq` order (empty without `lastSeq`) */
  missed: ChatMessage[];
  /** true when more were missed than one catch-up carries: page the rest with GET /rooms/{id}/messages */
  more: boolean;
  /** the room's latest `seq`, read after joining: a client without history starts its cursor here */
  lastSeq: number;
  presence: PresenceUser[];
  /**
   * the tutor's answers still in the making (queued, streaming, and for owners and moderators the held ones),
   * oldest first, each with its text so far and `deltas`, the `seq` of its last piece: apply the
   * `tutor:delta` events with a higher `seq` on top
   */
  answers: Answer[];
}

/** Events the client sends. Every payload is validated by the schema of the same name above. */
export interface ClientToServerEvents {
  "room:join": (payload: RoomJoinPayload, ack: AckFn<RoomJoinResult>) => void;
  "room:leave": (payload: RoomLeavePayload, ack: AckFn<{ roomId: string }>) => void;
  "chat:send": (payload: ChatSendPayload, ack: AckFn<ChatMessage>) => void;
  "chat:sync": (payload: ChatSyncPayload, ack: AckFn<{ messages: ChatMessage[]; more: boolean }>) => void;
  "chat:edit": (payload: ChatEditPayload, ack: AckFn<ChatMessage>) => void;
  "chat:delete": (payload: ChatDeletePayload, ack: AckFn<ChatMessage>) => void;
  "typing:set": (payload: TypingPayload, ack: AckFn<{ roomId: string }>) => void;
  "hand:set": (payload: HandPayload, ack: AckFn<{ roomId: string; raised: boolean }>) => void;
  "mod:mute": (payload: MutePayload, ack: AckFn<MemberState>) => void;
  "mod:remove": (payload: RemovePayload, ack: AckFn<{ roomId: string; userId: string }>) => void;
  "mod:lock": (payload: LockPayload, ack: AckFn<RoomState>) => void;
  "mod:end": (payload: RoomOnlyPayload, ack: AckFn<RoomState>) => void;
  "mod:reopen": (payload: RoomOnlyPayload, ack: AckFn<RoomState>) => void;
  "tutor:ask": (payload: TutorAskPayload, ack: AckFn<Answer>) => void;
  "tutor:cancel": (payload: TutorAnswerPayload, ack: AckFn<Answer>) => void;
  "tutor:get": (payload: TutorAnswerPayload, ack: AckFn<Answer>) => void;
  "tutor:review": (payload: TutorReviewPayload, ack: AckFn<Answer>) => void;
}

/** A member's moderation state, as `member:updated` and `mod:mute` carry it. */
export interface MemberState {
  roomId: string;
  userId: string;
  role: RoomRole;
  muted: boolean;
}

/** The live state of a room, as `room:updated` carries it. */
export interface RoomState {
  roomId: string;
  chatLocked: boolean;
  /** the tutor answers questions */
  tutorEnabled: boolean;
  /** tutor answers wait for a moderator's approval */
  tutorReview: boolean;
  endedAt: string | null;
}

/** Events the server sends. */
export interface ServerToClientEvents {
  /**
   * a new message in a joined room. `seq` numbers a room's messages without gaps, but messages sent through
   * other nodes may arrive out of order: a client holds a message until the ones before it arrive
   */
  "chat:message": (message: ChatMessage) => void;
  /** a message was edited by its author */
  "chat:edited": (message: ChatMessage) => void;
  /** a message was deleted: the tombstone (empty body, `deletedAt` set) */
  "chat:deleted": (message: ChatMessage) => void;
  /** someone started or stopped typing (not sent back to the typist; may be dropped under load) */
  "typing:update": (info: { roomId: string; userId: string; displayName: string; typing: boolean }) => void;
  /** a hand went up or down */
  "hand:update": (info: { roomId: string; userId: string; raised: boolean }) => void;
  /** a member's role or mute changed */
  "member:updated": (state: MemberState) => void;
  /** the chat was locked or unlocked, the session ended or reopened, or the tutor settings changed */
  "room:updated": (state: RoomState) => void;
  /** this user's sockets left the room: removed, banned, or the session ended (rejoin works only after `ended`, read-only) */
  "room:removed": (info: { roomId: string; reason: "removed" | "banned" | "ended" }) => void;
  /**
   * someone came into the room (sent on each of their joins: apply it as an upsert by `userId`). Presence
   * events that arrive before the `room:join` ack are applied on top of the ack's list
   */
  "presence:joined": (info: { roomId: string; user: PresenceUser }) => void;
  /** someone's last connection left the room, on every node */
  "presence:left": (info: { roomId: string; userId: string }) => void;
  /** the whole list, which replaces the client's: sent when a node died (its users are gone without a word) */
  "presence:update": (presence: Presence) => void;
  /**
   * the session behind this connection ended (logout, revocation, password change, account disabled): the
   * server disconnects right after; the client must not reconnect with the same credentials
   */
  "auth:revoked": (info: { code: "session_expired" }) => void;
  /** a question was asked: its answer (status `queued`) waits for the room's tutor, in order */
  "tutor:queued": (answer: Answer) => void;
  /** the tutor began an answer (status `streaming`; under teacher review its pieces go to moderators only) */
  "tutor:started": (answer: Answer) => void;
  /** one piece of an answer: append `text` when `seq` is the next one, ignore it when already seen */
  "tutor:delta": (delta: TutorDelta) => void;
  /**
   * an answer ended: `done` (or `held` for review), `failed` (with `error`; `text` keeps what came before) or
   * `cancelled`. `deltas` tells how many pieces `text` holds; the state here replaces the client's
   */
  "tutor:done": (answer: Answer) => void;
  /** a moderator released (`done`) or rejected a held answer */
  "tutor:reviewed": (answer: Answer) => void;
  /** this node is stopping: the client reconnects (to any node) and rejoins with its `lastSeq` */
  "server:shutdown": (info: { reconnect: true }) => void;
}

/** The `code` of a refused handshake, in `connect_error`'s `data`. */
export type HandshakeError = "unauthenticated" | "session_expired" | "csrf";
