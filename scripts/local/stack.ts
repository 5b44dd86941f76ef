// The local database and SQL endpoint together, as `npm run db` and `npm run dev` start them.
import { startSqlEndpoint, type SqlEndpoint } from "../sql-endpoint/server.ts";
import type { LocalConfig } from "./config.ts";
import { externalDatabase, startEmbeddedPostgres, type LocalDatabase } from "./postgres.ts";

export interface LocalStack {
  database: LocalDatabase;
  endpoint: SqlEndpoint;
  stop(): Promise<void>;
}

export async function startLocalStack(config: LocalConfig, delayMs: number): Promise<LocalStack> {
  const database = config.DATABASE_URL
    ? externalDatabase(config.DATABASE_URL)
    : await startEmbeddedPostgres({ dataDir: config.LOCAL_DATA_DIR, port: config.LOCAL_PG_PORT });
  let endpoint: SqlEndpoint;
  try {
    endpoint = await startSqlEndpoint({
      upstream: { host: database.host, port: database.port },
      host: config.LOCAL_SQL_HOST,
      port: config.LOCAL_SQL_PORT,
      delayMs,
    });
  } catch (error) {
    await database.stop();
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "EADDRINUSE") {
      throw new Error(`port ${config.LOCAL_SQL_PORT} is already in use: stop what uses it or set LOCAL_SQL_PORT`);
    }
    throw error;
  }
  if (!["127.0.0.1", "::1", "localhost"].includes(config.LOCAL_SQL_HOST)) {
    console.warn(
      `warning: the SQL endpoint listens on ${config.LOCAL_SQL_HOST}, not loopback: anyone who can reach it ` +
        "and knows a database password can run SQL",
    );
  }
  return {
    database,
    endpoint,
    async stop() {
      await endpoint.close();
      await database.stop();
    },
  };
}

export function describeStack(stack: LocalStack, delayMs: number): string {
  const where = stack.database.embedded ? "embedded PostgreSQL" : "PostgreSQL from DATABASE_URL";
  return [
    `DATABASE_URL=${stack.database.url}   (${where})`,
    `SQL endpoint: ${stack.endpoint.url}${delayMs ? `   (+${delayMs} ms per request)` : ""}`,
  ].join("\n");
}

/** Runs `stop` once on Ctrl-C, SIGTERM or a closed terminal (SIGHUP), then exits. */
export function onShutdown(stop: () => Promise<void>): void {
  let stopping = false;
  const handler = (signal: NodeJS.Signals) => {
    if (stopping) return;
    stopping = true;
    console.log(`\n${signal}: stopping…`);
    stop().then(
      () => process.exit(0),
      (error: unknown) => {
        console.error(error);
        process.exit(1);
      },
    );
  };
  process.on("SIGINT", handler);
  process.on("SIGTERM", handler);
  process.on("SIGHUP", handler);
}
