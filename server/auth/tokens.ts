import { errors, jwtVerify, SignJWT } from "jose";
import { BoundedMap } from "../bounded-map.ts";

const ISSUER = "doctorpy";
const AUDIENCE = "doctorpy";

export interface AccessClaims {
  userId: string;
  sessionId: string;
}

/**
 * Short-lived HS256 access tokens for non-browser clients and the realtime handshake. A token names the session
 * that issued it; the server checks that session on every use, so revoking the session or disabling the user
 * stops the token at once (and in any case the token expires after `ttlSec`).
 */
export class TokenService {
  constructor(
    private readonly key: Uint8Array,
    private readonly ttlSec: number,
  ) {}

  async issue(claims: AccessClaims): Promise<{ token: string; expiresAt: Date }> {
    const now = Math.floor(Date.now() / 1000);
    const exp = now + this.ttlSec;
    const token = await new SignJWT({ sid: claims.sessionId })
      .setProtectedHeader({ alg: "HS256", typ: "JWT" })
      .setSubject(claims.userId)
      .setIssuer(ISSUER)
      .setAudience(AUDIENCE)
      .setIssuedAt(now)
      .setExpirationTime(exp)
      .sign(this.key);
    return { token, expiresAt: new Date(exp * 1000) };
  }

  /**
   * The claims of a valid, unexpired token, or null. A verified signature is remembered until the token
   * expires: a script presents the same token many times, and checking HS256 again would find the same answer.
   * (Revocation is not affected: the session named by the token is checked on every use.)
   */
  async verify(token: string): Promise<AccessClaims | null> {
    const known = this.verified.get(token);
    if (known) {
      if (Date.now() < known.expiresAtMs) return known.claims;
      this.verified.delete(token);
      return null;
    }
    const claims = await this.check(token);
    if (claims) this.verified.set(token, claims);
    return claims?.claims ?? null;
  }

  private readonly verified = new BoundedMap<string, { claims: AccessClaims; expiresAtMs: number }>(10_000);

  private async check(token: string): Promise<{ claims: AccessClaims; expiresAtMs: number } | null> {
    try {
      const { payload } = await jwtVerify(token, this.key, {
        issuer: ISSUER,
        audience: AUDIENCE,
        algorithms: ["HS256"],
      });
      if (typeof payload.sub !== "string" || typeof payload.sid !== "string" || typeof payload.exp !== "number") {
        return null;
      }
      return { claims: { userId: payload.sub, sessionId: payload.sid }, expiresAtMs: payload.exp * 1000 };
    } catch (err) {
      if (err instanceof errors.JOSEError) return null;
      throw err;
    }
  }
}
