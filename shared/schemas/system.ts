import { z } from "zod";

/** `GET /healthz`: the process is up. */
export const Health = z.object({ status: z.literal("ok") }).meta({ id: "Health" });
export type Health = z.infer<typeof Health>;

/** `GET /readyz`: the database and, when configured, Redis answer. */
export const Ready = z
  .object({
    status: z.literal("ready"),
    database: z.enum(["pglite", "postgres"]),
    redis: z.enum(["up", "not configured"]),
  })
  .meta({ id: "Ready" });
export type Ready = z.infer<typeof Ready>;
