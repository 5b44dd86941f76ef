// For the lifecycle tests: a fresh database per test on the shared embedded PostgreSQL (test files
// run in parallel, so none shares a database), a connected `pg` client, and the Node CLIs run as
// subprocesses exactly as a user runs them.
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import pg from "pg";
import { inject, vi } from "vitest";
import { createCitusDatabase, dropCitusDatabase, type CitusLayout } from "../../scripts/local/citus.ts";

export const REPO_ROOT = resolve(import.meta.dirname, "../..");
export const TENANTS_CLI = resolve(REPO_ROOT, "scripts/tenants/cli.ts");
export const MIGRATE_CLI = resolve(REPO_ROOT, "scripts/migrations/cli.ts");

/**
 * The CLIs run in an empty folder: with no `.wrangler/state` there, the tenants CLI finds no local
 * KV cache to purge and stays away from the developer's (and spawns no wrangler); DATABASE_URL is
 * always set, so no `.env` is read either.
 */
const CLI_CWD = join(tmpdir(), "edge-tenants-cli-cwd");
mkdirSync(CLI_CWD, { recursive: true });

/** The Citus cluster the tests run on (TEST_CITUS=1), or undefined on plain PostgreSQL. */
export function citusLayout(): CitusLayout | undefined {
  const layout = inject("citusLayout");
  return layout ? (JSON.parse(layout) as CitusLayout) : undefined;
}

/** True when the suites run against the local Citus cluster (TEST_CITUS=1). */
export const onCitus = process.env.TEST_CITUS === "1";

// On Citus every database is made and dropped on three nodes, and DDL goes through the coordinator
// to the workers: the same tests take several times longer (more so on a busy machine).
if (onCitus) vi.setConfig({ testTimeout: 180_000, hookTimeout: 120_000 });

interface Created {
  serverUrl: string;
  name: string;
}

const created: Created[] = [];
const clients = new Set<pg.Client>();

function withDatabase(url: string, database: string): string {
  const u = new URL(url);
  u.pathname = `/${database}`;
  return u.toString();
}

async function adminClient(serverUrl: string): Promise<pg.Client> {
  const admin = new pg.Client({ connectionString: withDatabase(serverUrl, "postgres") });
  admin.on("error", () => {});
  await admin.connect();
  return admin;
}

/**
 * Creates an empty database on the test server (or on `serverUrl`'s server) and returns its URL.
 * Every database made here is dropped by `dropTestDatabases` (register it with afterAll).
 */
export async function freshDatabase(label = "lc", serverUrl: string = inject("databaseUrl")): Promise<string> {
  const name = `${label.replace(/[^a-z0-9_]/g, "_").slice(0, 40)}_${randomBytes(6).toString("hex")}`;
  const citus = citusLayout();
  if (citus && serverUrl === inject("databaseUrl")) {
    // On the Citus cluster (TEST_CITUS=1) a database exists on every node, with Citus in it.
    await createCitusDatabase(citus, name);
    created.push({ serverUrl, name });
    return withDatabase(serverUrl, name);
  }
  const admin = await adminClient(serverUrl);
  try {
    await admin.query(`CREATE DATABASE "${name}"`);
  } finally {
    await admin.end();
  }
  created.push({ serverUrl, name });
  return withDatabase(serverUrl, name);
}

/** A connected client; closed by `dropTestDatabases` if the test did not close it. */
export async function connectTo(url: string): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: url });
  client.on("error", () => {});
  await client.connect();
  clients.add(client);
  const end = client.end.bind(client);
  client.end = (async () => {
    clients.delete(client);
    await end();
  }) as typeof client.end;
  return client;
}

/** Best effort: closes leftover clients and drops every database this file created. */
export async function dropTestDatabases(): Promise<void> {
  await Promise.all([...clients].map((c) => c.end().catch(() => {})));
  const byServer = new Map<string, string[]>();
  for (const { serverUrl, name } of created.splice(0)) byServer.set(serverUrl, [...(byServer.get(serverUrl) ?? []), name]);
  for (const [serverUrl, names] of byServer) {
    const citus = citusLayout();
    if (citus && serverUrl === inject("databaseUrl")) {
      await Promise.all(names.map((name) => dropCitusDatabase(citus, name).catch(() => {})));
      continue;
    }
    const admin = await adminClient(serverUrl).catch(() => undefined);
    if (!admin) continue;
    try {
      for (const name of names) await admin.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`).catch(() => {});
    } finally {
      await admin.end().catch(() => {});
    }
  }
}

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export interface CliOptions {
  databaseUrl: string;
  /** A fixture migration set (MIGRATIONS_DIR); the checkout's migrations/ when absent. */
  migrationsDir?: string;
  env?: Record<string, string>;
  /** Where the CLI runs (default: an empty folder, see CLI_CWD). */
  cwd?: string;
}

/** Starts `node <script> ...args` with DATABASE_URL (and MIGRATIONS_DIR) set; `done` resolves when it exits. */
export function spawnScript(script: string, args: string[], options: CliOptions): { child: ChildProcess; done: Promise<CliResult> } {
  const env: NodeJS.ProcessEnv = { ...process.env, ...options.env, DATABASE_URL: options.databaseUrl };
  delete env.MIGRATIONS_DIR;
  if (options.migrationsDir) env.MIGRATIONS_DIR = options.migrationsDir;
  const child = spawn(process.execPath, [script, ...args], { cwd: options.cwd ?? CLI_CWD, env, stdio: ["ignore", "pipe", "pipe"] });
  const done = new Promise<CliResult>((resolveRun, reject) => {
    let stdout = "";
    let stderr = "";
    child.stdout!.setEncoding("utf8").on("data", (d: string) => (stdout += d));
    child.stderr!.setEncoding("utf8").on("data", (d: string) => (stderr += d));
    child.once("error", reject);
    child.once("close", (code) => resolveRun({ code, stdout, stderr }));
  });
  return { child, done };
}

/** Runs `node <script> ...args` with DATABASE_URL (and MIGRATIONS_DIR) set; resolves when it exits. */
export function runScript(script: string, args: string[], options: CliOptions): Promise<CliResult> {
  return spawnScript(script, args, options).done;
}

/** `npm run tenants -- ...args` */
export function tenantsCli(options: CliOptions, ...args: string[]): Promise<CliResult> {
  return runScript(TENANTS_CLI, args, options);
}

/** `npm run migrate -- ...args` */
export function migrateCli(options: CliOptions, ...args: string[]): Promise<CliResult> {
  return runScript(MIGRATE_CLI, args, options);
}

/** Formats a result for assertion messages, so a failing expectation shows what the CLI said. */
export function show(result: CliResult): string {
  return `exit ${result.code}\n--- stdout\n${result.stdout}--- stderr\n${result.stderr}`;
}
