import { z } from "zod";
import { LIMITS } from "../limits.ts";
import { RoleName, User } from "./auth.ts";
import { Limit, QueryBool } from "./common.ts";

export const UserListQuery = z
  .object({
    /** display name substring, or an exact email address */
    q: z.string().trim().max(LIMITS.searchMax).optional(),
    role: RoleName.optional(),
    disabled: QueryBool.optional(),
    page: z.coerce.number().int().min(1).max(100_000).default(1),
    limit: Limit,
  })
  .strict();
export type UserListQuery = z.infer<typeof UserListQuery>;

export const UserPage = z
  .object({ items: z.array(User), page: z.number().int(), limit: z.number().int(), total: z.number().int() })
  .meta({ id: "UserPage" });
export type UserPage = z.infer<typeof UserPage>;

export const UserPatch = z
  .object({ role: RoleName.optional(), disabled: z.boolean().optional() })
  .strict()
  .refine((v) => v.role !== undefined || v.disabled !== undefined, { message: "role or disabled is required" })
  .meta({ id: "UserPatch" });
export type UserPatch = z.infer<typeof UserPatch>;

export const AUDIT_OUTCOMES = ["success", "failure", "denied"] as const;

export const AuditEntry = z
  .object({
    id: z.number().int(),
    at: z.iso.datetime(),
    actorId: z.uuid().nullable(),
    action: z.string(),
    targetType: z.string().nullable(),
    targetId: z.string().nullable(),
    ip: z.string().nullable(),
    userAgent: z.string().nullable(),
    requestId: z.string().nullable(),
    outcome: z.enum(AUDIT_OUTCOMES),
    details: z.record(z.string(), z.unknown()),
    prevHash: z.string(),
    hash: z.string(),
  })
  .meta({ id: "AuditEntry" });
export type AuditEntry = z.infer<typeof AuditEntry>;

export const AuditQuery = z
  .object({
    action: z.string().max(64).optional(),
    actorId: z.uuid().optional(),
    targetId: z.string().max(128).optional(),
    outcome: z.enum(AUDIT_OUTCOMES).optional(),
    from: z.iso.datetime().optional(),
    to: z.iso.datetime().optional(),
    /** cursor: only entries with an id below this one (newest first) */
    before: z.coerce.number().int().min(1).optional(),
    limit: Limit,
  })
  .strict();
export type AuditQuery = z.infer<typeof AuditQuery>;

export const AuditPage = z
  .object({ items: z.array(AuditEntry), nextBefore: z.number().int().nullable() })
  .meta({ id: "AuditPage" });
export type AuditPage = z.infer<typeof AuditPage>;

export const AuditVerification = z
  .object({ ok: z.boolean(), checked: z.number().int(), firstBadId: z.number().int().nullable() })
  .meta({ id: "AuditVerification" });
export type AuditVerification = z.infer<typeof AuditVerification>;
