export * from "./errors.ts";
export * from "./limits.ts";
export * from "./permissions.ts";
export * from "./schemas/admin.ts";
export * from "./schemas/auth.ts";
export * from "./schemas/common.ts";
export * from "./schemas/rooms.ts";
export * from "./schemas/system.ts";
