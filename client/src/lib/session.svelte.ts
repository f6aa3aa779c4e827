import { AccessToken, can, type Me, Me as MeSchema, type Permission } from "../../../shared/index.ts";
import { ApiError, getJson, send, sendJson, setUnauthenticatedHandler } from "./api.ts";

type Status = "loading" | "ready";

/** The signed-in user, shared by every page. `me === null` means signed out. */
class Session {
  me = $state<Me | null>(null);
  status = $state<Status>("loading");
  /** Why a signed-in user was signed out behind their back (expired or revoked session), shown on the login page. */
  signedOutBy = $state<ApiError | null>(null);
  user = $derived(this.me?.user ?? null);

  /** Permissions come from the shared role table, so menus match what the server enforces. */
  can(permission: Permission): boolean {
    return this.me !== null && can(this.me.user.role, permission);
  }

  async load(): Promise<void> {
    try {
      this.me = await getJson("/auth/me", MeSchema);
    } catch (error) {
      if (!(error instanceof ApiError && error.status === 401)) throw error;
      this.me = null;
    } finally {
      this.status = "ready";
    }
  }

  async login(body: { email: string; password: string }): Promise<void> {
    this.me = await sendJson("POST", "/auth/login", MeSchema, body);
    this.signedOutBy = null;
  }

  async register(body: { email: string; password: string; displayName: string }): Promise<void> {
    this.me = await sendJson("POST", "/auth/register", MeSchema, body);
    this.signedOutBy = null;
  }

  async logout(): Promise<void> {
    try {
      await send("POST", "/auth/logout");
    } finally {
      this.me = null;
    }
  }

  async changePassword(body: { currentPassword: string; newPassword: string }): Promise<void> {
    await send("POST", "/auth/password", body);
  }

  async issueToken(): Promise<AccessToken> {
    return sendJson("POST", "/auth/token", AccessToken);
  }
}

export const session = new Session();

setUnauthenticatedHandler((error) => {
  if (session.me !== null) session.signedOutBy = error;
  session.me = null;
});
