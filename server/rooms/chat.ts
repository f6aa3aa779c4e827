import { and, asc, desc, eq, gt, lt } from "drizzle-orm";
import type { Db } from "../../db/client.ts";
import { messages, users } from "../../db/schema.ts";
import type { Statements } from "../../db/statements.ts";
import { LIMITS } from "../../shared/limits.ts";
import type { ChatMessage, HistoryPage } from "../../shared/schemas/rooms.ts";
import { AppError, notFound } from "../errors.ts";
import { MessageWriter } from "./message-writer.ts";
import { isManager, type RoomService, type Standing } from "./rooms.ts";

type MessageRow = typeof messages.$inferSelect;

function toMessage(row: MessageRow, authorName: string): ChatMessage {
  const deleted = row.deletedAt !== null;
  return {
    id: row.id,
    roomId: row.roomId,
    seq: row.seq,
    authorId: row.authorId,
    authorName,
    body: deleted ? "" : row.body,
    createdAt: row.createdAt.toISOString(),
    editedAt: row.editedAt?.toISOString() ?? null,
    deletedAt: row.deletedAt?.toISOString() ?? null,
  };
}

/** Who may write in a room right now: not an observer, not muted, chat not locked (managers excepted), room open. */
export function assertCanChat({ room, member }: Standing): void {
  if (room.archivedAt || room.endedAt) throw new AppError("room_closed");
  if (member.role === "observer") throw new AppError("forbidden", "Observers read the room but do not write in it");
  if (member.muted) throw new AppError("muted");
  if (room.chatLocked && !isManager(member.role)) throw new AppError("chat_locked");
}

/** Chat messages: persisted before anyone is told of them, paged newest first, replayed oldest first. */
export class ChatService {
  private readonly writer: MessageWriter;

  constructor(
    private readonly db: Db,
    statements: Statements,
    private readonly rooms: RoomService,
  ) {
    this.writer = new MessageWriter(statements);
  }

  /**
   * Stores a message from a member who may write; the caller broadcasts what this returns. `gate` runs once
   * the sender is known to be allowed (the room's rate budget: strangers must not spend it).
   */
  async send(
    roomId: string,
    user: { id: string; displayName: string },
    body: string,
    gate?: () => Promise<void>,
  ): Promise<ChatMessage> {
    assertCanChat(await this.rooms.cachedStanding(roomId, user.id));
    await gate?.();
    const row = await this.writer.write({ roomId, authorId: user.id, body });
    return {
      id: row.id,
      roomId,
      seq: row.seq,
      authorId: user.id,
      authorName: user.displayName,
      body,
      createdAt: row.createdAt.toISOString(),
      editedAt: null,
      deletedAt: null,
    };
  }

  /** A page of history, newest first, for a member. */
  async history(roomId: string, userId: string, before: number | undefined, limit: number): Promise<HistoryPage> {
    await this.rooms.standing(roomId, userId);
    const where = before ? and(eq(messages.roomId, roomId), lt(messages.seq, before)) : eq(messages.roomId, roomId);
    const rows = await this.db
      .select({ m: messages, name: users.displayName })
      .from(messages)
      .innerJoin(users, eq(users.id, messages.authorId))
      .where(where)
      .orderBy(desc(messages.seq))
      .limit(limit + 1);
    const page = rows.slice(0, limit);
    return {
      items: page.map((r) => toMessage(r.m, r.name)),
      nextBefore: rows.length > limit ? (page.at(-1)?.m.seq ?? null) : null,
    };
  }

  /**
   * What a reconnecting client missed: the messages after `afterSeq`, in order, at most `LIMITS.catchUpMax`
   * (`more` tells the client to page the rest over HTTP). The caller has already checked membership.
   */
  async since(roomId: string, afterSeq: number): Promise<{ items: ChatMessage[]; more: boolean }> {
    const rows = await this.db
      .select({ m: messages, name: users.displayName })
      .from(messages)
      .innerJoin(users, eq(users.id, messages.authorId))
      .where(and(eq(messages.roomId, roomId), gt(messages.seq, afterSeq)))
      .orderBy(asc(messages.seq))
      .limit(LIMITS.catchUpMax + 1);
    return {
      items: rows.slice(0, LIMITS.catchUpMax).map((r) => toMessage(r.m, r.name)),
      more: rows.length > LIMITS.catchUpMax,
    };
  }

  private async author(roomId: string, messageId: number): Promise<{ row: MessageRow; name: string }> {
    const [found] = await this.db
      .select({ row: messages, name: users.displayName })
      .from(messages)
      .innerJoin(users, eq(users.id, messages.authorId))
      .where(and(eq(messages.id, messageId), eq(messages.roomId, roomId)));
    if (!found || found.row.deletedAt) throw notFound("Message");
    return found;
  }

  /** Edits one's own message, under the same rules as sending. */
  async edit(roomId: string, userId: string, messageId: number, body: string): Promise<ChatMessage> {
    assertCanChat(await this.rooms.standing(roomId, userId));
    const { row, name } = await this.author(roomId, messageId);
    if (row.authorId !== userId) throw new AppError("forbidden", "You can only edit your own messages");
    const [updated] = await this.db
      .update(messages)
      .set({ body, editedAt: new Date() })
      .where(eq(messages.id, messageId))
      .returning();
    return toMessage(updated as MessageRow, name);
  }

  /**
   * Deletes a message, leaving a tombstone: the author deletes their own, owners and moderators any.
   * `byManager` tells the caller to audit it as moderation.
   */
  async delete(
    roomId: string,
    userId: string,
    messageId: number,
  ): Promise<{ message: ChatMessage; byManager: boolean }> {
    const { member } = await this.rooms.standing(roomId, userId);
    const { row, name } = await this.author(roomId, messageId);
    const own = row.authorId === userId;
    if (!own && !isManager(member.role))
      throw new AppError("forbidden", "Only owners and moderators delete others' messages");
    const [updated] = await this.db
      .update(messages)
      .set({ deletedAt: new Date(), deletedBy: userId })
      .where(eq(messages.id, messageId))
      .returning();
    return { message: toMessage(updated as MessageRow, name), byManager: !own };
  }
}
