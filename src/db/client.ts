import { neon, neonConfig } from "@neondatabase/serverless";
import { drizzle } from "drizzle-orm/neon-http";
import type { WorkerConfig } from "../env.ts";

export type Database = ReturnType<typeof createDatabase>;

/**
 * A Drizzle client over Neon's SQL-over-HTTP. Every query is one HTTP request and no session state
 * survives it. Only local mode sets LOCAL_SQL_ENDPOINT; without it the driver derives Neon's own
 * endpoint from the connection string's host.
 */
export function createDatabase(config: WorkerConfig) {
  if (config.LOCAL_SQL_ENDPOINT) {
    const endpoint = config.LOCAL_SQL_ENDPOINT;
    neonConfig.fetchEndpoint = () => endpoint;
  }
  return drizzle({ client: neon(config.DATABASE_URL) });
}
