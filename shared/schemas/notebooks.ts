import { z } from "zod";
import { NOTEBOOK_LIMITS } from "../notebook/protocol.ts";
import { Uuid } from "./common.ts";

/** A room's notebook and what I may do with it. Connect to `/collab/<id>` to edit it. */
export const NotebookInfo = z
  .object({
    id: Uuid,
    roomId: Uuid,
    locked: z.boolean(),
    writable: z.boolean(),
    canManage: z.boolean(),
  })
  .meta({ id: "NotebookInfo" });
export type NotebookInfo = z.infer<typeof NotebookInfo>;

export const NotebookLock = z.object({ locked: z.boolean() }).strict();

export const NotebookVersion = z
  .object({
    id: Uuid,
    name: z.string(),
    createdBy: Uuid.nullable(),
    createdAt: z.iso.datetime(),
  })
  .meta({ id: "NotebookVersion" });
export type NotebookVersion = z.infer<typeof NotebookVersion>;

export const NotebookVersionList = z.object({ items: z.array(NotebookVersion) });

export const NotebookVersionCreate = z
  .object({
    name: z
      .string()
      .trim()
      .min(1)
      .max(NOTEBOOK_LIMITS.versionNameMax)
      .refine((s) => !s.includes("\u0000"), "must not contain NUL"),
  })
  .strict();

export const VersionParams = z.object({ id: Uuid, versionId: Uuid });
