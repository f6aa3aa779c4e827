import { LIMITS } from "../../shared/limits.ts";
import {
  HandPayload,
  type PresenceUser,
  RoomJoinPayload,
  type RoomJoinResult,
  RoomLeavePayload,
  TypingPayload,
} from "../../shared/realtime.ts";
import type { Deps } from "../deps.ts";
import { AppError, notFound } from "../errors.ts";
import { isManager } from "../rooms/rooms.ts";
import { handle } from "./handle.ts";
import { type IoServer, type IoSocket, roomChannel } from "./types.ts";

/** Who is in a room now, across every node (the adapter asks the others), one entry per user. */
export async function presenceOf(io: IoServer, deps: Deps, roomId: string): Promise<PresenceUser[]> {
  const sockets = await io.in(roomChannel(roomId)).fetchSockets();
  const byUser = new Map<string, PresenceUser>();
  const members = new Map((await deps.rooms.roles(roomId)).map((m) => [m.userId, m]));
  for (const s of sockets) {
    const m = members.get(s.data.userId);
    if (m && !byUser.has(s.data.userId)) {
      byUser.set(s.data.userId, {
        userId: s.data.userId,
        displayName: s.data.displayName,
        role: m.role,
        handRaised: m.handRaisedAt !== null,
      });
    }
  }
  return [...byUser.values()];
}

/** The whole list to everyone in the room: the resynchronisation after a node died. */
export async function broadcastPresence(io: IoServer, deps: Deps, roomId: string): Promise<PresenceUser[]> {
  const users = await presenceOf(io, deps, roomId);
  io.to(roomChannel(roomId)).emit("presence:update", { roomId, users });
  return users;
}

/**
 * Tells the room that a user left, if none of their connections is still in it on any node. Called after the
 * socket left: of two connections of one user leaving at once, the one that asks last sees both gone.
 */
export async function announceLeft(io: IoServer, roomId: string, userId: string): Promise<void> {
  const sockets = await io.in(roomChannel(roomId)).fetchSockets();
  if (sockets.some((s) => s.data.userId === userId)) return;
  io.to(roomChannel(roomId)).emit("presence:left", { roomId, userId });
}

/** Presence announcements still running on each server: a stopping node lets them finish before closing Redis. */
const leaving = new WeakMap<IoServer, Set<Promise<void>>>();

/** Waits (at most `ms`) for the presence announcements of sockets that just went. */
export async function settleLeaving(io: IoServer, ms = 3500): Promise<void> {
  const pending = [...(leaving.get(io) ?? [])];
  if (pending.length === 0) return;
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([Promise.allSettled(pending), new Promise((r) => (timer = setTimeout(r, ms)))]);
  clearTimeout(timer);
}

/** `room:join` and `room:leave`, and presence when a socket goes. */
export function roomHandlers(io: IoServer, socket: IoSocket, deps: Deps): void {
  const { rooms, chat, log } = deps;

  socket.on(
    "room:join",
    handle(socket, deps, "room:join", RoomJoinPayload, async ({ roomId, lastSeq }): Promise<RoomJoinResult> => {
      const { room, member } = await rooms.standing(roomId, socket.data.userId);
      const joined = [...socket.rooms].filter((r) => r.startsWith("room:"));
      if (!socket.rooms.has(roomChannel(roomId)) && joined.length >= LIMITS.roomsPerSocket) {
        throw new AppError("too_many_rooms", `A connection can be in ${LIMITS.roomsPerSocket} rooms at once`);
      }
      // Join first, then read: a message persisted meanwhile arrives live, in the catch-up, or both; ids tell
      // the client which it has already seen, so nothing falls in between.
      await socket.join(roomChannel(roomId));
      const missed = lastSeq === undefined ? { items: [], more: false } : await chat.since(roomId, lastSeq);
      const roomSeq = await rooms.lastSeq(roomId);
      // One entry to the others (not the whole list to everyone: that made filling a room quadratic).
      const me: PresenceUser = {
        userId: socket.data.userId,
        displayName: socket.data.displayName,
        role: member.role,
        handRaised: member.handRaisedAt !== null,
      };
      socket.to(roomChannel(roomId)).emit("presence:joined", { roomId, user: me });
      const presence = await presenceOf(io, deps, roomId);
      const answers = await deps.tutor.live(roomId, isManager(member.role));
      return {
        room: rooms.toRoom(room, member.role),
        missed: missed.items,
        more: missed.more,
        lastSeq: roomSeq,
        presence,
        answers,
      };
    }),
  );

  socket.on(
    "room:leave",
    handle(socket, deps, "room:leave", RoomLeavePayload, async ({ roomId }) => {
      // Only a socket that was in the room changes its presence: others must not make the room re-broadcast.
      if (socket.rooms.has(roomChannel(roomId))) {
        await socket.leave(roomChannel(roomId));
        await announceLeft(io, roomId, socket.data.userId);
      }
      return { roomId };
    }),
  );

  socket.on("disconnecting", () => {
    const joined = [...socket.rooms].filter((r) => r.startsWith("room:")).map((r) => r.slice("room:".length));
    const { userId } = socket.data;
    // The socket is gone from its rooms only after this event: look for the user's other connections then.
    socket.once("disconnect", () => {
      const pending = leaving.get(io) ?? new Set<Promise<void>>();
      leaving.set(io, pending);
      for (const roomId of joined) {
        const p = announceLeft(io, roomId, userId)
          .catch((err: unknown) => log.warn({ err, roomId }, "presence update failed"))
          .finally(() => pending.delete(p));
        pending.add(p);
      }
    });
  });
}

/** `typing:set` and `hand:set`: small signals from members who are in the room. */
export function signalHandlers(io: IoServer, socket: IoSocket, deps: Deps): void {
  socket.on(
    "typing:set",
    handle(socket, deps, "typing:set", TypingPayload, async ({ roomId, typing }) => {
      if (!socket.rooms.has(roomChannel(roomId))) throw notFound("Room");
      const { userId, displayName } = socket.data;
      // Volatile: a typing hint may be dropped under load rather than queued.
      socket.to(roomChannel(roomId)).volatile.emit("typing:update", { roomId, userId, displayName, typing });
      return { roomId };
    }),
  );

  socket.on(
    "hand:set",
    handle(socket, deps, "hand:set", HandPayload, async ({ roomId, raised }) => {
      await deps.rooms.setHand(roomId, socket.data.userId, raised);
      // Clients keep `handRaised` of their presence entries from this event.
      io.to(roomChannel(roomId)).emit("hand:update", { roomId, userId: socket.data.userId, raised });
      return { roomId, raised };
    }),
  );
}
