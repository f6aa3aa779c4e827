/**
 * Roles and the permission table. The server's `requirePermission` middleware and the client's menus both
 * read this table; it is the single place where "who may do what" is decided for the HTTP API.
 */
export const ROLES = ["learner", "teacher", "admin"] as const;
export type Role = (typeof ROLES)[number];

export const PERMISSIONS = [
  /** read and manage one's own account, sessions and tokens */
  "account:self",
  /** list and search users */
  "users:read",
  /** change roles, disable and enable accounts */
  "users:manage",
  /** read and verify the audit log */
  "audit:read",
  /** use rooms: list mine, join by invite code, read history, chat (each room also checks the room role) */
  "rooms:use",
  /** create rooms (learners only while the admin setting `learnersCreateRooms` is on) */
  "rooms:create",
  /** read and change product settings */
  "settings:manage",
  /** read and search the course (lessons, exercises without their solutions, quizzes) */
  "lessons:read",
  /** configure the tutor's model, run experiments, export rated answers for fine-tuning */
  "tutor:manage",
] as const;
export type Permission = (typeof PERMISSIONS)[number];

export const ROLE_PERMISSIONS: Record<Role, readonly Permission[]> = {
  learner: ["account:self", "rooms:use", "rooms:create", "lessons:read"],
  teacher: ["account:self", "rooms:use", "rooms:create", "lessons:read"],
  /** every permission */
  admin: PERMISSIONS,
};

/** True when `role` holds `permission`. */
export function can(role: Role, permission: Permission): boolean {
  return ROLE_PERMISSIONS[role].includes(permission);
}
