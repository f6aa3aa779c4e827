import { z } from "zod";
import { LIMITS } from "../limits.ts";

/** RFC 9457 problem details, with our stable `code`, the request id and the offending fields. */
export const Problem = z
  .object({
    type: z.string(),
    title: z.string(),
    status: z.number().int(),
    detail: z.string().optional(),
    code: z.string(),
    requestId: z.string().optional(),
    errors: z.array(z.object({ path: z.string(), message: z.string() })).optional(),
    retryAfter: z.number().int().optional(),
  })
  .meta({ id: "Problem" });
export type Problem = z.infer<typeof Problem>;

export const Uuid = z.uuid();

export const IdParam = z.object({ id: Uuid });

/** `?limit=` shared by every list endpoint. */
export const Limit = z.coerce.number().int().min(1).max(LIMITS.pageSizeMax).default(LIMITS.pageSizeDefault);

/** Query-string boolean: only the literal strings are accepted, so `?disabled=yes` is an error, not true. */
export const QueryBool = z.enum(["true", "false"]).transform((v) => v === "true");
