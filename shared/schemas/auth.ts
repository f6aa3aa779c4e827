import { z } from "zod";
import { LIMITS } from "../limits.ts";
import { PERMISSIONS, ROLES } from "../permissions.ts";

export const Email = z.email().max(LIMITS.emailMax);
export const Password = z.string().min(LIMITS.passwordMin).max(LIMITS.passwordMax);
export const DisplayName = z.string().trim().min(LIMITS.displayNameMin).max(LIMITS.displayNameMax);
export const RoleName = z.enum(ROLES);

export const RegisterBody = z
  .object({ email: Email, password: Password, displayName: DisplayName })
  .strict()
  .meta({ id: "RegisterBody" });
export type RegisterBody = z.infer<typeof RegisterBody>;

export const LoginBody = z
  .object({ email: Email, password: z.string().min(1).max(LIMITS.passwordMax) })
  .strict()
  .meta({ id: "LoginBody" });
export type LoginBody = z.infer<typeof LoginBody>;

export const PasswordChangeBody = z
  .object({ currentPassword: z.string().min(1).max(LIMITS.passwordMax), newPassword: Password })
  .strict()
  .meta({ id: "PasswordChangeBody" });
export type PasswordChangeBody = z.infer<typeof PasswordChangeBody>;

export const User = z
  .object({
    id: z.uuid(),
    email: z.string(),
    displayName: z.string(),
    role: RoleName,
    disabled: z.boolean(),
    createdAt: z.iso.datetime(),
  })
  .meta({ id: "User" });
export type User = z.infer<typeof User>;

export const Me = z
  .object({ user: User, permissions: z.array(z.enum(PERMISSIONS)), via: z.enum(["cookie", "token"]) })
  .meta({ id: "Me" });
export type Me = z.infer<typeof Me>;

export const SessionInfo = z
  .object({
    id: z.string(),
    createdAt: z.iso.datetime(),
    lastUsedAt: z.iso.datetime(),
    expiresAt: z.iso.datetime(),
    ip: z.string().nullable(),
    userAgent: z.string().nullable(),
    current: z.boolean(),
  })
  .meta({ id: "SessionInfo" });
export type SessionInfo = z.infer<typeof SessionInfo>;

export const SessionList = z.object({ items: z.array(SessionInfo) }).meta({ id: "SessionList" });
export type SessionList = z.infer<typeof SessionList>;

export const SessionIdParam = z.object({ id: z.string().regex(/^[a-z2-7]{26}$/, "not a session id") });

export const AccessToken = z.object({ token: z.string(), expiresAt: z.iso.datetime() }).meta({ id: "AccessToken" });
export type AccessToken = z.infer<typeof AccessToken>;
