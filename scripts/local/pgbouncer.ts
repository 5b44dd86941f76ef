// A real PgBouncer in transaction mode in front of a local PostgreSQL: what Hyperdrive's pool does
// on Cloudflare, for the benchmarks' Hyperdrive client and the tests of the migration lock through
// a pooler. Debian's `pgbouncer` (PGBOUNCER names another binary). Its ini and userlist go to a
// private temp folder (removed at exit also after Ctrl-C); it listens on a free loopback port.
// PgBouncer refuses to run as root, so as root it runs as the `postgres` OS user.
import { spawn, type ChildProcess } from "node:child_process";
import { chmodSync, chownSync, existsSync, writeFileSync } from "node:fs";
import { delimiter, join } from "node:path";
import pg from "pg";
import { freePort, postgresUserIds } from "./postgres.ts";
import { tempFolder } from "./temp-folder.ts";

function findBinary(): string | undefined {
  if (process.env.PGBOUNCER) return process.env.PGBOUNCER;
  const dirs = [...(process.env.PATH ?? "").split(delimiter), "/usr/sbin", "/usr/local/sbin", "/usr/bin"];
  return dirs.map((d) => join(d, "pgbouncer")).find((p) => existsSync(p));
}

/** The pgbouncer binary (PGBOUNCER, else PATH and the sbin folders), or undefined. */
export const PGBOUNCER = findBinary();

export interface PgBouncer {
  /** `serverUrl` with PgBouncer's host and port instead of PostgreSQL's. */
  url(serverUrl: string): string;
  /** What PgBouncer logged (for assertion messages). */
  log(): string;
  stop(): Promise<void>;
}

/**
 * Starts PgBouncer (pool_mode = transaction, `poolSize` server connections per database and user)
 * in front of the server of `serverUrl`, whose user and password it uses. Every database of that
 * server is reachable through it under its own name.
 */
export async function startPgBouncer(serverUrl: string, poolSize = 1): Promise<PgBouncer> {
  if (!PGBOUNCER) throw new Error("pgbouncer not found");
  const server = new URL(serverUrl);
  const user = decodeURIComponent(server.username);
  const password = decodeURIComponent(server.password);
  const port = await freePort();
  const folder = tempFolder("edge-tenants-pgbouncer-");
  const dir = folder.path;
  const quote = (s: string) => `"${s.replace(/"/g, '""')}"`;
  writeFileSync(join(dir, "userlist.txt"), `${quote(user)} ${quote(password)}\n`, { mode: 0o600 });
  writeFileSync(
    join(dir, "pgbouncer.ini"),
    [
      "[databases]",
      `* = host=${server.hostname} port=${server.port || 5432}`,
      "[pgbouncer]",
      "listen_addr = 127.0.0.1",
      `listen_port = ${port}`,
      "unix_socket_dir =",
      "auth_type = scram-sha-256",
      `auth_file = ${join(dir, "userlist.txt")}`,
      "pool_mode = transaction",
      `default_pool_size = ${poolSize}`,
      "min_pool_size = 0",
      "reserve_pool_size = 0",
      "max_client_conn = 200",
      "server_lifetime = 3600",
      "ignore_startup_parameters = extra_float_digits",
      "",
    ].join("\n"),
  );
  let runAs: { uid: number; gid: number } | undefined;
  if (process.getuid?.() === 0) {
    runAs = postgresUserIds();
    if (!runAs) throw new Error("PgBouncer cannot run as root and there is no 'postgres' OS user to run it as");
    chmodSync(dir, 0o700);
    for (const f of ["", "userlist.txt", "pgbouncer.ini"]) chownSync(join(dir, f), runAs.uid, runAs.gid);
  }
  let output = "";
  const child: ChildProcess = spawn(PGBOUNCER, [join(dir, "pgbouncer.ini")], {
    stdio: ["ignore", "pipe", "pipe"],
    ...(runAs ?? {}),
  });
  child.stdout!.on("data", (d: Buffer) => (output += d.toString()));
  child.stderr!.on("data", (d: Buffer) => (output += d.toString()));
  let exited = false;
  child.once("exit", () => (exited = true));
  // If this process ends before stop() (an error, a signal to this process only), so does PgBouncer.
  const killAtExit = () => child.kill("SIGTERM");
  process.once("exit", killAtExit);

  const url = (target: string) => {
    const u = new URL(target);
    u.hostname = "127.0.0.1";
    u.port = String(port);
    return u.toString();
  };
  const stop = async () => {
    process.removeListener("exit", killAtExit);
    if (!exited) {
      const gone = new Promise((r) => child.once("exit", r));
      child.kill("SIGTERM");
      await gone;
    }
    folder.remove();
  };

  // Ready when a query goes through it.
  const deadline = Date.now() + 15_000;
  for (;;) {
    if (exited) {
      await stop();
      throw new Error(`pgbouncer exited at start:\n${output}`);
    }
    const client = new pg.Client({ connectionString: url(serverUrl) });
    client.on("error", () => {});
    try {
      await client.connect();
      await client.query("SELECT 1");
      await client.end();
      break;
    } catch (error) {
      await client.end().catch(() => {});
      if (Date.now() > deadline) {
        await stop();
        throw new Error(`pgbouncer did not answer within 15 s (${(error as Error).message}):\n${output}`);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  return { url, log: () => output, stop };
}
