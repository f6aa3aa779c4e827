import type { CookieOptions } from "hono/utils/cookie";

/** `__Host-` in production pins the cookie to our host, over HTTPS, for the whole site. */
export const SESSION_COOKIE = (production: boolean) => (production ? "__Host-dp_session" : "dp_session");

export function cookieOptions(production: boolean, maxAgeSec?: number): CookieOptions {
  return {
    path: "/",
    httpOnly: true,
    sameSite: "Lax",
    secure: production,
    ...(maxAgeSec ? { maxAge: maxAgeSec } : {}),
  };
}
