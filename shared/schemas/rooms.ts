import { z } from "zod";
import { LIMITS } from "../limits.ts";
import { Limit, QueryBool } from "./common.ts";

export const ROOM_ROLES = ["owner", "moderator", "member", "observer"] as const;
export type RoomRole = (typeof ROOM_ROLES)[number];
export const RoomRoleName = z.enum(ROOM_ROLES);

export const LANGUAGES = ["fr", "en"] as const;
export const Language = z.enum(LANGUAGES);

export const RoomCreate = z
  .object({
    name: z.string().trim().min(1).max(LIMITS.roomNameMax),
    topic: z.string().trim().max(LIMITS.roomTopicMax).default(""),
    language: Language.default("en"),
  })
  .strict()
  .meta({ id: "RoomCreate" });
export type RoomCreate = z.infer<typeof RoomCreate>;

export const RoomUpdate = z
  .object({
    name: z.string().trim().min(1).max(LIMITS.roomNameMax).optional(),
    topic: z.string().trim().max(LIMITS.roomTopicMax).optional(),
    language: Language.optional(),
    /** the AI tutor answers in this room */
    tutorEnabled: z.boolean().optional(),
    /** tutor answers wait for a moderator's approval */
    tutorReview: z.boolean().optional(),
    /** identical questions may be answered from the cache */
    tutorCache: z.boolean().optional(),
  })
  .strict()
  .refine((v) => Object.keys(v).length > 0, { message: "nothing to change" })
  .meta({ id: "RoomUpdate" });
export type RoomUpdate = z.infer<typeof RoomUpdate>;

export const Room = z
  .object({
    id: z.uuid(),
    name: z.string(),
    topic: z.string(),
    language: Language,
    ownerId: z.uuid(),
    /** only owners and moderators see it */
    inviteCode: z.string().nullable(),
    chatLocked: z.boolean(),
    tutorEnabled: z.boolean(),
    tutorReview: z.boolean(),
    tutorCache: z.boolean(),
    /** a learner's own room, alone with the tutor */
    personal: z.boolean(),
    /** set when a moderator ended the session: the room is read-only until reopened */
    endedAt: z.iso.datetime().nullable(),
    archivedAt: z.iso.datetime().nullable(),
    createdAt: z.iso.datetime(),
    /** the caller's role in the room */
    myRole: RoomRoleName,
  })
  .meta({ id: "Room" });
export type Room = z.infer<typeof Room>;

/** `POST /rooms/personal`: the language of the room, if it has to be created. */
export const PersonalRoomBody = z
  .object({ language: Language.default("en") })
  .strict()
  .meta({ id: "PersonalRoomBody" });

export const RoomList = z.object({ items: z.array(Room) }).meta({ id: "RoomList" });
export type RoomList = z.infer<typeof RoomList>;

export const InviteCode = z.string().regex(/^[a-z2-7]{10}$/, "not an invite code");
export const JoinBody = z.object({ code: InviteCode }).strict().meta({ id: "JoinBody" });

export const Member = z
  .object({
    userId: z.uuid(),
    displayName: z.string(),
    role: RoomRoleName,
    muted: z.boolean(),
    joinedAt: z.iso.datetime(),
  })
  .meta({ id: "Member" });
export type Member = z.infer<typeof Member>;
export const MemberList = z.object({ items: z.array(Member) }).meta({ id: "MemberList" });
export type MemberList = z.infer<typeof MemberList>;

export const MemberPatch = z
  .object({ role: z.enum(["moderator", "member", "observer"]) })
  .strict()
  .meta({ id: "MemberPatch" });

export const RoomMemberParams = z.object({ id: z.uuid(), userId: z.uuid() });

/** `?ban=true` removes the member for good: the invite code no longer lets them back in. */
export const MemberRemoveQuery = z.object({ ban: QueryBool.default(false) }).strict();

export const ChatMessage = z
  .object({
    id: z.number().int(),
    roomId: z.uuid(),
    /** position in the room: 1, 2, 3, ... without gaps */
    seq: z.number().int(),
    authorId: z.uuid(),
    authorName: z.string(),
    /** empty once deleted: a tombstone keeps its place in the history */
    body: z.string(),
    createdAt: z.iso.datetime(),
    editedAt: z.iso.datetime().nullable(),
    deletedAt: z.iso.datetime().nullable(),
  })
  .meta({ id: "ChatMessage" });
export type ChatMessage = z.infer<typeof ChatMessage>;

export const HistoryQuery = z
  .object({
    /** cursor: messages with a `seq` below this one (newest first) */
    before: z.coerce.number().int().min(1).max(LIMITS.seqMax).optional(),
    limit: Limit,
  })
  .strict();
export const HistoryPage = z
  .object({ items: z.array(ChatMessage), nextBefore: z.number().int().nullable() })
  .meta({ id: "HistoryPage" });
export type HistoryPage = z.infer<typeof HistoryPage>;

export const AppSettings = z
  .object({
    learnersCreateRooms: z.boolean(),
    /** questions one user may ask the tutor per minute */
    tutorQuestionsPerMinute: z.number().int(),
    /** tokens (prompt and answer) one user's questions may use per day */
    tutorTokensPerDay: z.number().int(),
  })
  .meta({ id: "AppSettings" });
export type AppSettings = z.infer<typeof AppSettings>;
export const AppSettingsPatch = z
  .object({
    learnersCreateRooms: z.boolean().optional(),
    tutorQuestionsPerMinute: z.number().int().min(1).max(600).optional(),
    tutorTokensPerDay: z.number().int().min(100).max(100_000_000).optional(),
  })
  .strict()
  .meta({ id: "AppSettingsPatch" });
