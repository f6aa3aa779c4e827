import { randomBytes } from "node:crypto";
import { EventEmitter } from "node:events";
import { encodeBase32LowerCaseNoPadding } from "@oslojs/encoding";
import { and, asc, desc, eq, isNull } from "drizzle-orm";
import type { Db } from "../../db/client.ts";
import { roomMembers, rooms, users } from "../../db/schema.ts";
import type { Role } from "../../shared/permissions.ts";
import type { Member, Room, RoomCreate, RoomRole, RoomUpdate } from "../../shared/schemas/rooms.ts";
import { type InvalidationBus, localBus } from "../auth/session-cache.ts";
import { AppError, forbidden, notFound } from "../errors.ts";
import type { SettingsService } from "../settings/settings.ts";
import { RoomCache, RoomEpochs } from "./room-cache.ts";

export type RoomRow = typeof rooms.$inferSelect;
export type MemberRow = typeof roomMembers.$inferSelect;

const newInviteCode = () => encodeBase32LowerCaseNoPadding(randomBytes(10)).slice(0, 10);
const MANAGERS: readonly RoomRole[] = ["owner", "moderator"];
export const isManager = (role: RoomRole) => MANAGERS.includes(role);

/** What changed, announced on this node by the domain; the realtime layer applies it to live sockets. */
export interface RoomEventMap {
  "member:removed": [{ roomId: string; userId: string; banned: boolean }];
  "member:changed": [{ roomId: string; userId: string; role: RoomRole; muted: boolean }];
  /** `ended`: the session has just ended (everyone leaves the room) */
  "room:changed": [{ room: RoomRow; ended: boolean }];
}

/** A user's standing in a room, as every room action needs it. */
export interface Standing {
  room: RoomRow;
  member: MemberRow;
}

/**
 * Rooms and their members. Non-members learn nothing about a room (404, as for a room that does not exist);
 * banned users are not members. Owners and moderators manage members; only the owner archives the room or
 * rotates its invite code.
 */
type RoleRow = { userId: string; role: RoomRole; handRaisedAt: Date | null };

export class RoomService {
  readonly events = new EventEmitter<RoomEventMap>();
  private readonly epochs = new RoomEpochs();
  /** standings read for the hot path (each chat message) */
  private readonly standings: RoomCache<Standing>;
  /** each room's member roles and hands (each join's presence list) */
  private readonly roleLists: RoomCache<RoleRow[]>;

  constructor(
    private readonly db: Db,
    private readonly settings: SettingsService,
    private readonly bus: InvalidationBus = localBus(),
    cacheTtlMs = 60_000,
  ) {
    this.standings = new RoomCache(this.epochs, 50_000, cacheTtlMs);
    this.roleLists = new RoomCache(this.epochs, 1_000, cacheTtlMs);
    bus.subscribe((event) => {
      if (event.kind === "room") this.epochs.bump(event.id);
      if (event.kind === "all") {
        this.epochs.forgetAll();
        this.standings.clear();
        this.roleLists.clear();
      }
    });
  }

  /** Forgets everything cached about the room, here at once and on the other nodes through the bus. */
  private invalidate(roomId: string): void {
    this.epochs.bump(roomId);
    this.bus.publish({ kind: "room", id: roomId });
  }

  /**
   * `standing`, served from memory for up to a minute: every change to the room or its members invalidates
   * it (on every node), a read that raced an invalidation is not kept, and a bus that may have lost messages
   * clears everything. The time limit is a backstop only. For the chat hot path.
   */
  cachedStanding(roomId: string, userId: string): Promise<Standing> {
    return this.standings.get(roomId, userId, () => this.standing(roomId, userId));
  }

  toRoom(room: RoomRow, role: RoomRole): Room {
    return {
      id: room.id,
      name: room.name,
      topic: room.topic,
      language: room.language,
      ownerId: room.ownerId,
      inviteCode: isManager(role) ? room.inviteCode : null,
      chatLocked: room.chatLocked,
      tutorEnabled: room.tutorEnabled,
      tutorReview: room.tutorReview,
      tutorCache: room.tutorCache,
      personal: room.personal,
      endedAt: room.endedAt?.toISOString() ?? null,
      archivedAt: room.archivedAt?.toISOString() ?? null,
      createdAt: room.createdAt.toISOString(),
      myRole: role,
    };
  }

  async create(user: { id: string; role: Role }, input: RoomCreate): Promise<Room> {
    if (user.role === "learner" && !(await this.settings.get()).learnersCreateRooms) {
      throw forbidden("Only teachers can create rooms here");
    }
    return this.db.transaction(async (tx) => {
      const [room] = await tx
        .insert(rooms)
        .values({ ...input, ownerId: user.id, inviteCode: newInviteCode() })
        .returning();
      const created = room as RoomRow;
      await tx.insert(roomMembers).values({ roomId: created.id, userId: user.id, role: "owner" });
      return this.toRoom(created, "owner");
    });
  }

  /**
   * The caller's personal room, created on first call (whoever may create rooms or not: it is where a learner
   * works alone with the tutor). `created` tells whether it is new.
   */
  async personal(
    user: { id: string; displayName: string },
    language: Room["language"],
  ): Promise<{ room: Room; created: boolean }> {
    const find = () =>
      this.db
        .select()
        .from(rooms)
        .where(and(eq(rooms.ownerId, user.id), eq(rooms.personal, true)));
    const [existing] = await find();
    if (existing) return { room: this.toRoom(existing, "owner"), created: false };
    const created = await this.db.transaction(async (tx) => {
      const [room] = await tx
        .insert(rooms)
        .values({
          name: language === "fr" ? "Mon espace" : "My space",
          language,
          ownerId: user.id,
          inviteCode: newInviteCode(),
          personal: true,
        })
        .onConflictDoNothing()
        .returning();
      if (room) await tx.insert(roomMembers).values({ roomId: room.id, userId: user.id, role: "owner" });
      return room;
    });
    // Two first calls at once: the other one created it.
    if (created) return { room: this.toRoom(created, "owner"), created: true };
    const [raced] = await find();
    if (!raced) throw new AppError("internal");
    return { room: this.toRoom(raced, "owner"), created: false };
  }

  async listMine(userId: string): Promise<Room[]> {
    const rows = await this.db
      .select({ room: rooms, role: roomMembers.role })
      .from(roomMembers)
      .innerJoin(rooms, eq(rooms.id, roomMembers.roomId))
      .where(and(eq(roomMembers.userId, userId), eq(roomMembers.banned, false), isNull(rooms.archivedAt)))
      .orderBy(desc(rooms.createdAt));
    return rows.map((r) => this.toRoom(r.room, r.role));
  }

  /** The caller's standing in a room, or 404 when they are not a member (or are banned). */
  async standing(roomId: string, userId: string): Promise<Standing> {
    const [row] = await this.db
      .select({ room: rooms, member: roomMembers })
      .from(roomMembers)
      .innerJoin(rooms, eq(rooms.id, roomMembers.roomId))
      .where(and(eq(roomMembers.roomId, roomId), eq(roomMembers.userId, userId)));
    if (!row || row.member.banned) throw notFound("Room");
    return row;
  }

  /** Like `standing`, and the caller must be an owner or moderator (or exactly the owner). */
  async managing(roomId: string, userId: string, ownerOnly = false): Promise<Standing> {
    const s = await this.standing(roomId, userId);
    const ok = ownerOnly ? s.member.role === "owner" : isManager(s.member.role);
    if (!ok)
      throw forbidden(ownerOnly ? "Only the room's owner can do this" : "Only owners and moderators can do this");
    return s;
  }

  async get(roomId: string, userId: string): Promise<Room> {
    const { room, member } = await this.standing(roomId, userId);
    return this.toRoom(room, member.role);
  }

  async update(roomId: string, userId: string, patch: RoomUpdate): Promise<Room> {
    const { member } = await this.managing(roomId, userId);
    const [room] = await this.db
      .update(rooms)
      .set({ ...patch, updatedAt: new Date() })
      .where(eq(rooms.id, roomId))
      .returning();
    this.invalidate(roomId);
    this.events.emit("room:changed", { room: room as RoomRow, ended: false });
    return this.toRoom(room as RoomRow, member.role);
  }

  async archive(roomId: string, userId: string): Promise<Room> {
    await this.managing(roomId, userId, true);
    const [room] = await this.db
      .update(rooms)
      .set({ archivedAt: new Date(), updatedAt: new Date() })
      .where(eq(rooms.id, roomId))
      .returning();
    this.invalidate(roomId);
    return this.toRoom(room as RoomRow, "owner");
  }

  async rotateInvite(roomId: string, userId: string): Promise<Room> {
    await this.managing(roomId, userId, true);
    const [room] = await this.db
      .update(rooms)
      .set({ inviteCode: newInviteCode(), updatedAt: new Date() })
      .where(eq(rooms.id, roomId))
      .returning();
    return this.toRoom(room as RoomRow, "owner");
  }

  /** Joining by invite code makes you a member; a banned user stays out, an existing member keeps their role. */
  async joinByCode(userId: string, code: string): Promise<Room> {
    const [room] = await this.db.select().from(rooms).where(eq(rooms.inviteCode, code));
    if (!room || room.archivedAt || (room.personal && room.ownerId !== userId)) throw notFound("Invite code");
    const [existing] = await this.db
      .select()
      .from(roomMembers)
      .where(and(eq(roomMembers.roomId, room.id), eq(roomMembers.userId, userId)));
    if (existing?.banned) throw new AppError("banned");
    if (existing) return this.toRoom(room, existing.role);
    await this.db.insert(roomMembers).values({ roomId: room.id, userId, role: "member" }).onConflictDoNothing();
    this.invalidate(room.id);
    return this.toRoom(room, "member");
  }

  /** The `seq` of the room's latest message (0 before the first). */
  async lastSeq(roomId: string): Promise<number> {
    const [row] = await this.db.select({ lastSeq: rooms.lastSeq }).from(rooms).where(eq(rooms.id, roomId));
    return row?.lastSeq ?? 0;
  }

  /** Every current member's role and hand (for presence), without checking the caller; cached as standings are. */
  roles(roomId: string): Promise<RoleRow[]> {
    return this.roleLists.get(roomId, "", () =>
      this.db
        .select({ userId: roomMembers.userId, role: roomMembers.role, handRaisedAt: roomMembers.handRaisedAt })
        .from(roomMembers)
        .where(and(eq(roomMembers.roomId, roomId), eq(roomMembers.banned, false))),
    );
  }

  async members(roomId: string, userId: string): Promise<Member[]> {
    await this.standing(roomId, userId);
    const rows = await this.db
      .select({ member: roomMembers, displayName: users.displayName })
      .from(roomMembers)
      .innerJoin(users, eq(users.id, roomMembers.userId))
      .where(and(eq(roomMembers.roomId, roomId), eq(roomMembers.banned, false)))
      .orderBy(asc(roomMembers.joinedAt));
    return rows.map((r) => ({
      userId: r.member.userId,
      displayName: r.displayName,
      role: r.member.role,
      muted: r.member.muted,
      joinedAt: r.member.joinedAt.toISOString(),
    }));
  }

  /** The target's row, after checking that `actorId` may manage them (never the owner; moderators only below). */
  private async manageable(
    roomId: string,
    actorId: string,
    targetId: string,
  ): Promise<{ actor: MemberRow; target: MemberRow }> {
    const { member: actor } = await this.managing(roomId, actorId);
    const [target] = await this.db
      .select()
      .from(roomMembers)
      .where(and(eq(roomMembers.roomId, roomId), eq(roomMembers.userId, targetId)));
    if (!target || target.banned) throw notFound("Member");
    if (target.role === "owner") throw forbidden("The owner cannot be changed or removed");
    if (actor.role === "moderator" && target.role === "moderator" && actorId !== targetId) {
      throw forbidden("Moderators cannot act on other moderators");
    }
    return { actor, target };
  }

  async setRole(
    roomId: string,
    actorId: string,
    targetId: string,
    role: Exclude<RoomRole, "owner">,
  ): Promise<MemberRow> {
    const { actor } = await this.manageable(roomId, actorId, targetId);
    if (role === "moderator" && actor.role !== "owner") throw forbidden("Only the owner appoints moderators");
    return this.changeMember(roomId, targetId, { role });
  }

  /** Writes a member's new role or mute, then tells the caches and the realtime layer. */
  private async changeMember(roomId: string, userId: string, change: Partial<MemberRow>): Promise<MemberRow> {
    const [row] = await this.db
      .update(roomMembers)
      .set(change)
      .where(and(eq(roomMembers.roomId, roomId), eq(roomMembers.userId, userId)))
      .returning();
    const member = row as MemberRow;
    this.invalidate(roomId);
    this.events.emit("member:changed", { roomId, userId, role: member.role, muted: member.muted });
    return member;
  }

  /** Removes a member; with `ban`, they cannot come back with the invite code. */
  async remove(roomId: string, actorId: string, targetId: string, ban: boolean): Promise<void> {
    await this.manageable(roomId, actorId, targetId);
    const where = and(eq(roomMembers.roomId, roomId), eq(roomMembers.userId, targetId));
    if (ban) await this.db.update(roomMembers).set({ banned: true, muted: false }).where(where);
    else await this.db.delete(roomMembers).where(where);
    this.invalidate(roomId);
    this.events.emit("member:removed", { roomId, userId: targetId, banned: ban });
  }

  /** Mutes or unmutes a member (owners and moderators; never the owner, moderators only below them). */
  async setMuted(roomId: string, actorId: string, targetId: string, muted: boolean): Promise<MemberRow> {
    await this.manageable(roomId, actorId, targetId);
    return this.changeMember(roomId, targetId, { muted });
  }

  private async setRoom(roomId: string, actorId: string, change: Partial<RoomRow>): Promise<RoomRow> {
    await this.managing(roomId, actorId);
    const [room] = await this.db
      .update(rooms)
      .set({ ...change, updatedAt: new Date() })
      .where(eq(rooms.id, roomId))
      .returning();
    this.invalidate(roomId);
    this.events.emit("room:changed", { room: room as RoomRow, ended: change.endedAt instanceof Date });
    return room as RoomRow;
  }

  /** Locks or unlocks the chat: while locked, only owners and moderators write. */
  setChatLocked(roomId: string, actorId: string, locked: boolean): Promise<RoomRow> {
    return this.setRoom(roomId, actorId, { chatLocked: locked });
  }

  /** Ends the live session (the room turns read-only and hands go down) or reopens it. */
  async setEnded(roomId: string, actorId: string, ended: boolean): Promise<RoomRow> {
    const room = await this.setRoom(roomId, actorId, { endedAt: ended ? new Date() : null });
    if (ended) await this.db.update(roomMembers).set({ handRaisedAt: null }).where(eq(roomMembers.roomId, roomId));
    return room;
  }

  /** Raises or lowers the caller's own hand (any member who may speak). */
  async setHand(roomId: string, userId: string, raised: boolean): Promise<void> {
    const { room, member } = await this.standing(roomId, userId);
    if (room.endedAt || room.archivedAt) throw new AppError("room_closed");
    if (member.role === "observer") throw forbidden("Observers do not raise hands");
    await this.db
      .update(roomMembers)
      .set({ handRaisedAt: raised ? new Date() : null })
      .where(and(eq(roomMembers.roomId, roomId), eq(roomMembers.userId, userId)));
    this.invalidate(roomId);
  }
}
