import type { Redis } from "ioredis";

/**
 * Closes a Redis connection after the replies it still waits for (QUIT), so that no caller's command is
 * rejected as "Connection is closed"; a connection that cannot say goodbye within `ms` is dropped.
 */
export async function closeRedis(redis: Redis | undefined, ms = 1000): Promise<void> {
  if (!redis) return;
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    redis.quit().catch(() => {}),
    new Promise<void>((resolve) => {
      timer = setTimeout(resolve, ms);
    }),
  ]);
  clearTimeout(timer);
  redis.disconnect();
}

type FireAndForget = "publish" | "subscribe" | "psubscribe";

/**
 * Commands whose reply some caller may not wait for: the Socket.IO adapter publishes without waiting, and ioredis
 * resubscribes after a reconnect without handling the reply. A connection that closes meanwhile (a node shutting
 * down, Redis restarting again) refuses them, and an unhandled rejection ends the process. Here a refusal is
 * reported to `onRefused` instead; callers that wait for the reply still see it.
 */
export function quietReplies(
  redis: Redis,
  commands: readonly FireAndForget[],
  onRefused: (command: FireAndForget, err: Error) => void,
): void {
  const target = redis as unknown as Record<FireAndForget, (...args: unknown[]) => Promise<unknown>>;
  for (const command of commands) {
    const send = target[command].bind(redis);
    target[command] = (...args: unknown[]) => {
      const reply = send(...args);
      reply.catch((err: Error) => onRefused(command, err));
      return reply;
    };
  }
}
