import { eq } from "drizzle-orm";
import type { Db } from "../../db/client.ts";
import { appSettings } from "../../db/schema.ts";
import type { QuestionKind, TutorModelSettings, TutorModelUpdate } from "../../shared/schemas/tutor.ts";
import type { TutorConfig } from "../config.ts";
import type { Keyring } from "../crypto/keyring.ts";
import type { CourseService } from "./course-service.ts";
import { OfflineProvider } from "./providers/offline.ts";
import { OpenAiProvider } from "./providers/openai.ts";
import type { Provider } from "./providers/types.ts";

const KEY = "tutor.model";
const API_KEY_AAD = "app_settings:tutor.model:apiKey";

/**
 * Key rotation for the stored API key (inside a JSON value, so not one of the rotation's encrypted columns):
 * re-encrypts it with the active key if an older one wrote it.
 */
export async function reencryptTutorKey(db: Db, keyring: Keyring): Promise<{ checked: number; reencrypted: number }> {
  const [row] = await db.select().from(appSettings).where(eq(appSettings.key, KEY));
  const stored = row?.value as Stored | undefined;
  if (!stored?.apiKeyEnc) return { checked: 0, reencrypted: 0 };
  if (!keyring.isStale(stored.apiKeyEnc)) return { checked: 1, reencrypted: 0 };
  const value: Stored = {
    ...stored,
    apiKeyEnc: keyring.encrypt(keyring.decrypt(stored.apiKeyEnc, API_KEY_AAD), API_KEY_AAD),
  };
  await db.update(appSettings).set({ value, updatedAt: new Date() }).where(eq(appSettings.key, KEY));
  return { checked: 1, reencrypted: 1 };
}

/** What an admin stored (the API key encrypted with the keyring, as emails are). */
interface Stored {
  provider: "openai" | "offline";
  baseUrl?: string;
  model?: string;
  apiKeyEnc?: string;
  modelsByKind?: Partial<Record<QuestionKind, string>>;
}

/** The provider to use now, and the model per kind of question. */
export interface ResolvedModel {
  provider: Provider;
  modelsByKind: Partial<Record<QuestionKind, string>>;
}

/**
 * The tutor's model: from the environment (`LLM_*`), or as an admin set it at runtime (stored in
 * `app_settings`, which then wins until reset), or the offline tutor. Each node reads the stored choice at most
 * every `cacheMs` (a change made on another node applies within that time; at once on the node that made it),
 * and keeps one provider per distinct configuration.
 */
export class TutorModels {
  private cached: { at: number; value: Promise<Stored | undefined> } | undefined;
  private provider: { key: string; value: Promise<Provider> } | undefined;

  constructor(
    private readonly db: Db,
    private readonly keyring: Keyring,
    private readonly env: TutorConfig,
    private readonly course: CourseService,
    private readonly cacheMs = 5000,
  ) {}

  private stored(): Promise<Stored | undefined> {
    if (!this.cached || Date.now() - this.cached.at > this.cacheMs) {
      this.cached = {
        at: Date.now(),
        value: this.db
          .select()
          .from(appSettings)
          .where(eq(appSettings.key, KEY))
          .then((rows) => rows[0]?.value as Stored | undefined),
      };
    }
    return this.cached.value;
  }

  /** The settings in force, without the key. */
  async settings(): Promise<TutorModelSettings> {
    const s = await this.stored();
    if (s) {
      return {
        source: "admin",
        provider: s.provider,
        baseUrl: s.baseUrl ?? null,
        model: s.model ?? null,
        apiKeySet: Boolean(s.apiKeyEnc),
        modelsByKind: s.modelsByKind ?? {},
      };
    }
    const { llm } = this.env;
    return llm
      ? {
          source: "env",
          provider: "openai",
          baseUrl: llm.baseUrl,
          model: llm.model,
          apiKeySet: Boolean(llm.apiKey),
          modelsByKind: {},
        }
      : { source: "offline", provider: "offline", baseUrl: null, model: null, apiKeySet: false, modelsByKind: {} };
  }

  /** Stores an admin's choice; an omitted API key keeps the stored one (for the same endpoint). */
  async update(change: TutorModelUpdate): Promise<TutorModelSettings> {
    let value: Stored;
    if (change.provider === "offline") value = { provider: "offline" };
    else {
      const before = await this.stored();
      const keepKey = change.apiKey === undefined && before?.baseUrl === change.baseUrl ? before.apiKeyEnc : undefined;
      value = {
        provider: "openai",
        baseUrl: change.baseUrl,
        model: change.model,
        modelsByKind: change.modelsByKind,
        ...(change.apiKey !== undefined
          ? { apiKeyEnc: this.keyring.encrypt(change.apiKey, API_KEY_AAD) }
          : keepKey
            ? { apiKeyEnc: keepKey }
            : {}),
      };
    }
    await this.db
      .insert(appSettings)
      .values({ key: KEY, value })
      .onConflictDoUpdate({ target: appSettings.key, set: { value, updatedAt: new Date() } });
    this.cached = undefined;
    return this.settings();
  }

  /** Back to the environment's settings. */
  async reset(): Promise<TutorModelSettings> {
    await this.db.delete(appSettings).where(eq(appSettings.key, KEY));
    this.cached = undefined;
    return this.settings();
  }

  /** The provider for the next generation. */
  async resolve(): Promise<ResolvedModel> {
    const s = await this.stored();
    const env = this.env;
    const llm =
      s === undefined
        ? env.llm
        : s.provider === "openai" && s.baseUrl && s.model
          ? {
              baseUrl: s.baseUrl,
              model: s.model,
              apiKey: s.apiKeyEnc ? this.keyring.decrypt(s.apiKeyEnc, API_KEY_AAD) : undefined,
            }
          : undefined;
    const key = JSON.stringify(llm ?? null);
    if (this.provider?.key !== key) {
      this.provider = {
        key,
        value: llm
          ? Promise.resolve(
              new OpenAiProvider({ ...llm, idleTimeoutMs: env.idleTimeoutMs, totalTimeoutMs: env.totalTimeoutMs }),
            )
          : this.course.load().then(({ course }) => new OfflineProvider(course, { delayMs: env.offlineDelayMs })),
      };
    }
    return { provider: await this.provider.value, modelsByKind: (llm && s?.modelsByKind) || {} };
  }
}
