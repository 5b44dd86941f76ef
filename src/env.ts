import { z } from "zod";
import type { Database } from "./db/client.ts";

/** Worker configuration, parsed once at the fetch boundary. */
export const WorkerConfigSchema = z.object({
  DATABASE_URL: z
    .string({ error: "DATABASE_URL is not set: run `wrangler secret put DATABASE_URL` (production) or `npm run dev` (local)" })
    .regex(/^postgres(ql)?:\/\//, "DATABASE_URL must be a postgres:// or postgresql:// connection string"),
  /**
   * Local mode only: the URL of the local SQL-over-HTTP endpoint (`npm run dev` sets it). Production
   * never has it, so the driver talks to Neon.
   */
  LOCAL_SQL_ENDPOINT: z.url({ error: "LOCAL_SQL_ENDPOINT must be a URL such as http://127.0.0.1:4445/sql" }).optional(),
});

export type WorkerConfig = z.infer<typeof WorkerConfigSchema>;

export type AppEnv = {
  /** `Env` comes from `wrangler types`; the two strings are secrets/vars, checked by the schema above. */
  Bindings: Env & Partial<Record<keyof WorkerConfig, string>>;
  Variables: {
    config: WorkerConfig;
    db: Database;
    requestId: string;
  };
};
