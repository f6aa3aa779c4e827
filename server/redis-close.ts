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
