import type { Deps } from "../deps.ts";
import { broadcastPresence } from "./room-handlers.ts";
import type { IoServer } from "./types.ts";

const NODES = "dp:nodes";

/**
 * A node that dies (SIGKILL, power loss) says nothing; its users must still leave the presence lists. Every
 * node writes a heartbeat (its id, scored by the time) into a Redis sorted set every `intervalMs`. A node whose
 * heartbeat is older than `staleMs` is dead: each node that sees it dead re-broadcasts presence for every room
 * it has sockets in (presence comes from `fetchSockets`, which only live nodes answer). A node, however briefly
 * it lived, is caught: it registered when it started. Dead entries are pruned long after every node saw them.
 * The same id (`deps.nodeId`) marks what the node relays for the notebooks, whose awareness is dropped too.
 */
export function watchNodes(io: IoServer, deps: Deps, intervalMs = 1000, staleMs = 4000): () => void {
  const redis = deps.redis;
  if (!redis) return () => {};
  const me = deps.nodeId;
  const mourned = new Set<string>();
  let busy = false;

  const beat = async () => {
    const now = Date.now();
    await redis.zadd(NODES, now, me);
    const dead = (await redis.zrangebyscore(NODES, 0, now - staleMs)).filter((id) => id !== me && !mourned.has(id));
    await redis.zremrangebyscore(NODES, 0, now - 60_000);
    if (dead.length === 0) return;
    for (const id of dead) mourned.add(id);
    // Their notebook clients' cursors go too.
    deps.notebooks.hub.forgetNodes(dead);
    const rooms = [...io.of("/").adapter.rooms.keys()].filter((r) => r.startsWith("room:"));
    for (const channel of rooms) await broadcastPresence(io, deps, channel.slice("room:".length));
    deps.log.info({ dead, rooms: rooms.length }, "nodes stopped answering: presence refreshed");
  };
  const tick = () => {
    if (busy) return;
    busy = true;
    beat()
      .catch((err: unknown) => deps.log.warn({ err: String(err) }, "node heartbeat failed"))
      .finally(() => {
        busy = false;
      });
  };
  tick();
  const timer = setInterval(tick, intervalMs);
  timer.unref();
  return () => {
    clearInterval(timer);
    // A node that stops cleanly leaves the set: its clients' disconnects already updated presence.
    redis.zrem(NODES, me).catch(() => {});
  };
}
