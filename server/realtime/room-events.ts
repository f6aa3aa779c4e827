import type { Deps } from "../deps.ts";
import { roomState } from "./moderation-handlers.ts";
import { type IoServer, roomChannel, userChannel } from "./types.ts";

/**
 * Applies the rooms domain's changes to live sockets, whichever layer made them (socket moderation or the
 * HTTP API). The domain announces a change on the node that made it; the adapter carries the effect to every
 * node: a removed or banned member's sockets leave the room everywhere at once.
 */
export function applyRoomEvents(io: IoServer, deps: Deps): () => void {
  const { events } = deps.rooms;
  const onRemoved = ({ roomId, userId, banned }: { roomId: string; userId: string; banned: boolean }) => {
    io.to(userChannel(userId)).emit("room:removed", { roomId, reason: banned ? "banned" : "removed" });
    io.in(userChannel(userId)).socketsLeave(roomChannel(roomId));
    // Every connection of theirs leaves: no need to ask the nodes whether one is left.
    io.to(roomChannel(roomId)).emit("presence:left", { roomId, userId });
  };
  const onChanged = (state: {
    roomId: string;
    userId: string;
    role: "owner" | "moderator" | "member" | "observer";
    muted: boolean;
  }) => {
    // Clients keep the `role` of their presence entries from this event.
    io.to(roomChannel(state.roomId)).emit("member:updated", state);
  };
  const onRoom = ({ room, ended }: { room: Parameters<typeof roomState>[0]; ended: boolean }) => {
    const channel = roomChannel(room.id);
    io.to(channel).emit("room:updated", roomState(room));
    if (ended) {
      // Ending the session sends everyone out; they may rejoin to read, not to write, until it reopens.
      io.to(channel).emit("room:removed", { roomId: room.id, reason: "ended" });
      io.in(channel).socketsLeave(channel);
    }
  };

  events.on("member:removed", onRemoved);
  events.on("member:changed", onChanged);
  events.on("room:changed", onRoom);
  return () => {
    events.off("member:removed", onRemoved);
    events.off("member:changed", onChanged);
    events.off("room:changed", onRoom);
  };
}
