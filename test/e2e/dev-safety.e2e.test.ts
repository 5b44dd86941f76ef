// `npm run dev` as a careful user expects it: it reads `.env` for itself but hands the Worker only
// its own bindings, never prints a password, seeds demo tenants only into the local embedded
// database, refuses to start a second time on the same data folder or on taken ports (saying
// which), and when one of its parts dies it says which and stops the others.
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { copyFile, mkdtemp, rm, symlink, writeFile } from "node:fs/promises";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { getByHost } from "../../scripts/local/http.ts";
import { CREDENTIALS_FILE } from "../../scripts/local/defaults.ts";
import { freePort } from "../../scripts/local/postgres.ts";
import { loadMigrations } from "../../scripts/migrations/files.ts";
import { appDatabaseUrl } from "../../scripts/db/roles.ts";
import { initDatabase } from "../../scripts/tenants/operations.ts";
import { connectTo, dropTestDatabases, freshDatabase } from "../support/database.ts";
import { processesMentioning } from "../support/dev-command.ts";

const REPO = resolve(import.meta.dirname, "../..");
const children = new Set<ChildProcess>();
const scratchDirs: string[] = [];

/** A folder that looks like a fresh clone (the project's files linked in), with its own `.env`. */
async function clone(dotenv?: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "edge-tenants-clone-"));
  scratchDirs.push(dir);
  for (const name of ["node_modules", "scripts", "src", "migrations", "public", "tsconfig.json"]) {
    await symlink(join(REPO, name), join(dir, name));
  }
  for (const name of ["package.json", "wrangler.toml"]) await copyFile(join(REPO, name), join(dir, name));
  if (dotenv !== undefined) await writeFile(join(dir, ".env"), dotenv);
  return dir;
}

interface Run {
  child: ChildProcess;
  exited: Promise<number | null>;
  output(): string;
}

function startDev(cwd: string, env: Record<string, string> = {}): Run {
  const child = spawn(join(REPO, "node_modules/.bin/tsx"), ["scripts/dev.ts"], {
    cwd,
    // The clone's `.env` provides the rest; an empty DATABASE_URL counts as unset.
    env: { ...process.env, DATABASE_URL: "", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  children.add(child);
  let output = "";
  child.stdout!.on("data", (d: Buffer) => (output += d.toString()));
  child.stderr!.on("data", (d: Buffer) => (output += d.toString()));
  const exited = new Promise<number | null>((done) => child.once("exit", (code) => done(code)));
  return { child, exited, output: () => output };
}

async function waitFor(run: Run, ready: () => Promise<boolean>, what: string, timeoutMs = 150_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (run.child.exitCode !== null) throw new Error(`npm run dev exited before ${what}:\n${run.output()}`);
    if (await ready().catch(() => false)) return;
    if (Date.now() > deadline) throw new Error(`npm run dev did not reach "${what}" in time:\n${run.output()}`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

function refusesConnections(port: number): Promise<boolean> {
  return new Promise((done) => {
    const socket = connect(port, "127.0.0.1");
    socket.once("connect", () => {
      socket.destroy();
      done(false);
    });
    socket.once("error", () => done(true));
  });
}

const EXTERNAL_APP_ROLE = `dev_app_${process.pid}`;

afterAll(async () => {
  for (const child of children) if (child.exitCode === null) child.kill("SIGKILL");
  for (const dir of scratchDirs) await rm(dir, { recursive: true, force: true });
  await dropTestDatabases();
  // Roles are global to the server: the one the DATABASE_URL test made goes once its database has.
  const admin = await connectTo(inject("databaseUrl"));
  await admin.query(`DROP ROLE IF EXISTS ${EXTERNAL_APP_ROLE}`).catch(() => {});
  await admin.end();
});

describe("npm run dev on the local embedded database, from a clone with a .env", () => {
  let dir: string;
  let dev: Run;
  const ports = { pg: 0, sql: 0, worker: 0 };

  beforeAll(async () => {
    ports.pg = await freePort();
    ports.sql = await freePort();
    ports.worker = await freePort();
    dir = await clone(
      [
        `LOCAL_PG_PORT=${ports.pg}`,
        `LOCAL_SQL_PORT=${ports.sql}`,
        `WORKER_PORT=${ports.worker}`,
        "LOCAL_DATA_DIR=.local/postgres",
        "NODE_ONLY_CANARY=only-for-node-tools",
        "",
      ].join("\n"),
    );
    dev = startDev(dir);
    await waitFor(dev, async () => (await getByHost(ports.worker, "acme.localhost", "/tenant")).status === 200, "serving acme");
  }, 180_000);

  it("reads .env for itself, hands the Worker only its own bindings, hidden, and prints no password", () => {
    const { password } = JSON.parse(readFileSync(join(dir, ".local/postgres", CREDENTIALS_FILE), "utf8"));
    const output = dev.output();
    expect(output).toContain(`DATABASE_URL=postgresql://postgres:****@127.0.0.1:${ports.pg}/edge_tenants   (embedded PostgreSQL)`);
    expect(output).not.toContain(password);
    // wrangler lists the Worker's bindings: DATABASE_URL and LOCAL_SQL_ENDPOINT hidden, nothing from .env.
    const bindings = output.split("\n").filter((line) => line.startsWith("env."));
    const names = bindings.map((line) => line.split(/[\s(]+/)[0]!.slice("env.".length));
    expect(names).toEqual(expect.arrayContaining(["DATABASE_URL", "LOCAL_SQL_ENDPOINT"]));
    for (const nodeOnly of ["NODE_ONLY_CANARY", "LOCAL_PG_PORT", "LOCAL_SQL_PORT", "WORKER_PORT", "LOCAL_DATA_DIR"]) {
      expect(names).not.toContain(nodeOnly);
    }
    expect(bindings.filter((line) => /^env\.(DATABASE_URL|LOCAL_SQL_ENDPOINT) \("\(hidden\)"\)/.test(line))).toHaveLength(2);
    expect(output).not.toContain("NODE_ONLY_CANARY");
    expect(output).not.toMatch(/Using secrets defined in \.env/);
  });

  it("keeps .env out of git and documents every variable in .env.example", () => {
    expect(spawnSync("git", ["check-ignore", "-q", ".env"], { cwd: REPO }).status).toBe(0);
    expect(spawnSync("git", ["check-ignore", "-q", ".env.example"], { cwd: REPO }).status).toBe(1);
    const example = readFileSync(join(REPO, ".env.example"), "utf8");
    for (const name of ["DATABASE_URL", "LOCAL_DATA_DIR", "LOCAL_PG_PORT", "LOCAL_SQL_PORT", "LOCAL_SQL_HOST", "LOCAL_SQL_DELAY_MS", "WORKER_PORT"]) {
      expect(example).toMatch(new RegExp(`^#? ?${name}=`, "m"));
    }
  });

  it("refuses a second run on the same data folder, saying a server runs on it, without touching the first", async () => {
    const second = startDev(dir);
    expect(await second.exited).toBe(1);
    const pid = readFileSync(join(dir, ".local/postgres/postmaster.pid"), "utf8").split("\n")[0];
    expect(second.output()).toBe(
      `error: a PostgreSQL server already runs on the data folder .local/postgres (pid ${pid}, port ${ports.pg}): ` +
        "another `npm run dev` or `npm run db` is using it; stop that one first, or set LOCAL_DATA_DIR to another folder\n",
    );
    expect((await getByHost(ports.worker, "acme.localhost", "/tenant")).status).toBe(200);
  }, 60_000);

  it("refuses a SESSION_SECRET that the Worker's env file could not carry unchanged, before starting anything", async () => {
    const odd = startDev(dir, { SESSION_SECRET: "a-secret-with-a-dollar-$HOME-0123456789abcdef", LOCAL_DATA_DIR: join(dir, "odd-folder") });
    expect(await odd.exited).toBe(1);
    expect(odd.output()).toBe(
      "error: SESSION_SECRET must not contain $, double quotes, backquotes, backslashes or line breaks (e.g. `openssl rand -hex 32`), or unset it for a random one\n",
    );
    expect(existsSync(join(dir, "odd-folder"))).toBe(false);
  }, 60_000);

  it("lists every taken port with its variable in one message", async () => {
    const third = startDev(dir, { LOCAL_DATA_DIR: join(dir, "another-folder") });
    expect(await third.exited).toBe(1);
    expect(third.output()).toBe(
      `error: ports already in use: ${ports.pg} (LOCAL_PG_PORT), ${ports.sql} (LOCAL_SQL_PORT), ${ports.worker} (WORKER_PORT); ` +
        "stop what uses them, or set those variables (environment or .env) to free ports\n",
    );
    expect(existsSync(join(dir, "another-folder"))).toBe(false);
  }, 60_000);

  it("when PostgreSQL dies, says so and stops the endpoint and wrangler", async () => {
    const bindingsFile = /Using secrets defined in (\S+)/.exec(dev.output())![1]!;
    expect(existsSync(resolve(dir, bindingsFile))).toBe(true);
    const pid = Number(readFileSync(join(dir, ".local/postgres/postmaster.pid"), "utf8").split("\n")[0]);
    process.kill(pid, "SIGKILL");
    expect(await dev.exited).toBe(1);
    expect(dev.output()).toContain(
      `error: PostgreSQL (the embedded server on port ${ports.pg}) exited (killed by SIGKILL); stopping the rest of the local stack`,
    );
    expect(await refusesConnections(ports.sql)).toBe(true);
    expect(await refusesConnections(ports.worker)).toBe(true);
    await new Promise((r) => setTimeout(r, 1_000));
    expect(processesMentioning(`--port ${ports.worker}`)).toEqual([]);
    expect(processesMentioning(dir)).toEqual([]);
    expect(existsSync(resolve(dir, bindingsFile))).toBe(false);
  }, 60_000);
});

describe("npm run dev with DATABASE_URL", () => {
  it("serves that database as it is, as the app role from APP_DATABASE_URL: no demo tenants, no migrations, no password printed", async () => {
    const databaseUrl = await freshDatabase("dev_external");
    const client = await connectTo(databaseUrl);
    // An app role of this test's own (roles are global to the server; the Worker tests use the default one).
    const appRole = EXTERNAL_APP_ROLE;
    const appPassword = `pw-${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}`;
    try {
      await initDatabase(client, loadMigrations(), { appRole, appPassword });
      const workerPort = await freePort();
      const dev = startDev(await clone(), {
        DATABASE_URL: databaseUrl,
        APP_DATABASE_URL: appDatabaseUrl(databaseUrl, appRole, appPassword),
        LOCAL_SQL_PORT: String(await freePort()),
        WORKER_PORT: String(workerPort),
      });
      await waitFor(dev, async () => (await getByHost(workerPort, "localhost", "/health")).status === 200, "serving /health");
      // The Worker's queries came in as the app role (the endpoint keeps its session open a while).
      const sessions = await client.query(
        "SELECT count(*)::int AS n FROM pg_stat_activity WHERE usename = $1 AND datname = current_database()",
        [appRole],
      );
      expect(sessions.rows[0].n).toBeGreaterThan(0);
      const password = decodeURIComponent(new URL(databaseUrl).password);
      expect(password.length).toBeGreaterThan(8);
      expect(dev.output()).not.toContain(password);
      expect(dev.output()).not.toContain(appPassword);
      expect(dev.output()).toContain("(PostgreSQL from DATABASE_URL)");
      expect(dev.output()).toContain(
        "DATABASE_URL is set: serving that database as it is (no init, migrations or demo tenants; " +
          "run `npm run tenants -- init` and `npm run migrate` yourself)",
      );
      expect((await client.query("SELECT slug FROM shared.tenants")).rows).toEqual([]);
      expect((await getByHost(workerPort, "acme.localhost", "/tenant")).status).toBe(403);
      dev.child.kill("SIGINT");
      expect(await dev.exited).toBe(0);
    } finally {
      await client.end();
    }
  }, 180_000);

  it("without APP_DATABASE_URL refuses to start the Worker rather than change the app role's password there", async () => {
    const databaseUrl = await freshDatabase("dev_external_noapp");
    const dev = startDev(await clone(), {
      DATABASE_URL: databaseUrl,
      LOCAL_SQL_PORT: String(await freePort()),
      WORKER_PORT: String(await freePort()),
    });
    expect(await dev.exited).toBe(1);
    expect(dev.output()).toContain(
      "error: DATABASE_URL names a database other than the embedded one: set APP_DATABASE_URL to the app role's " +
        "connection string, which the Worker will use (see docs/roles.md)",
    );
  }, 120_000);
});
