import { eq } from "drizzle-orm";
import type { Db } from "../../db/client.ts";
import { appSettings } from "../../db/schema.ts";
import type { AppSettings } from "../../shared/schemas/rooms.ts";

export const DEFAULT_SETTINGS: AppSettings = {
  learnersCreateRooms: true,
  tutorQuestionsPerMinute: 6,
  tutorTokensPerDay: 50_000,
};

/** Product settings that admins change at runtime, stored one JSON value per key. */
export class SettingsService {
  constructor(private readonly db: Db) {}

  async get(): Promise<AppSettings> {
    const rows = await this.db.select().from(appSettings);
    // Only the known keys, and only values of the default's type: a stale or mistyped row never leaks out.
    const settings: AppSettings = { ...DEFAULT_SETTINGS };
    for (const r of rows) {
      const key = r.key as keyof AppSettings;
      if (Object.hasOwn(DEFAULT_SETTINGS, key) && typeof r.value === typeof DEFAULT_SETTINGS[key]) {
        (settings as Record<string, unknown>)[key] = r.value;
      }
    }
    return settings;
  }

  async update(patch: Partial<AppSettings>): Promise<AppSettings> {
    for (const [key, value] of Object.entries(patch)) {
      if (value === undefined) continue;
      await this.db
        .insert(appSettings)
        .values({ key, value })
        .onConflictDoUpdate({ target: appSettings.key, set: { value, updatedAt: new Date() } });
    }
    return this.get();
  }

  async remove(key: keyof AppSettings): Promise<void> {
    await this.db.delete(appSettings).where(eq(appSettings.key, key));
  }
}
