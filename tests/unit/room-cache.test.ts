import { describe, expect, it, vi } from "vitest";
import { RoomCache, RoomEpochs } from "../../server/rooms/room-cache.ts";

describe("the per-room cache", () => {
  it("shares one read between concurrent misses on a key", async () => {
    const cache = new RoomCache<number>(new RoomEpochs(), 100, 60_000);
    let reads = 0;
    const load = async () => {
      reads++;
      await new Promise((r) => setTimeout(r, 20));
      return 42;
    };
    const all = await Promise.all(Array.from({ length: 50 }, () => cache.get("room", "user", load)));
    expect(all.every((v) => v === 42)).toBe(true);
    expect(reads).toBe(1);
    expect(await cache.get("room", "user", load)).toBe(42);
    expect(reads).toBe(1);
  });

  it("does not keep a read that a change to the room overtook, and reads again after it", async () => {
    const epochs = new RoomEpochs();
    const cache = new RoomCache<string>(epochs, 100, 60_000);
    let release: (v: string) => void = () => {};
    const slow = cache.get("room", "k", () => new Promise<string>((r) => (release = r)));
    epochs.bump("room");
    release("stale");
    expect(await slow).toBe("stale");
    expect(await cache.get("room", "k", async () => "fresh")).toBe("fresh");
    // another room is not affected by the bump
    expect(await cache.get("other", "k", async () => "a")).toBe("a");
    epochs.bump("room");
    expect(await cache.get("other", "k", async () => "b")).toBe("a");
    epochs.forgetAll();
    expect(await cache.get("other", "k", async () => "c")).toBe("c");
  });

  it("lets entries expire at spread times between half and all of the TTL", async () => {
    vi.useFakeTimers();
    try {
      const cache = new RoomCache<number>(new RoomEpochs(), 10_000, 60_000);
      for (let i = 0; i < 200; i++) await cache.get("room", `u${i}`, async () => i);
      const start = Date.now();
      let reread = 0;
      const check = async () => {
        reread = 0;
        for (let i = 0; i < 200; i++) {
          await cache.get("room", `u${i}`, async () => {
            reread++;
            return i;
          });
        }
        return reread;
      };
      vi.setSystemTime(start + 29_000);
      expect(await check()).toBe(0);
      vi.setSystemTime(start + 45_000);
      const some = await check();
      expect(some).toBeGreaterThan(20);
      expect(some).toBeLessThan(180);
    } finally {
      vi.useRealTimers();
    }
  });
});
