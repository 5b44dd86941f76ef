// Benchmark (not a test): `tenants adopt` of a big single-tenant database next to the naive
// alternative, a `pg_dump | pg_restore` of its tables into a new schema.
//   npm run bench:adopt -- [--items 5000000] [--padding 100] [--pg-bin <dir>]
// It builds the app database of test/fixtures/single-tenant-app.ts (users, items, an enum, a view,
// a trigger, a shared price list) with --items items (50 per user), their descriptions padded
// with --padding characters (the default makes 5 million items about 1 GB), on a throwaway cluster
// of the PostgreSQL in --pg-bin (default: `pg_config --bindir`), because pg_dump refuses servers
// newer than itself: the cluster, pg_dump and pg_restore are then one version. Then, in one run:
//   - pg_dump --format=custom --schema=public | pg_restore into a new database, whose public is
//     renamed to the tenant schema's name (the data copied, indexes rebuilt, constraints checked);
//   - `tenants adopt --dry-run` and `tenants adopt`, as processes (what a user runs), with the time
//     inside the transaction (the window in which the app's tables are locked) and the verification
//     after commit (exact row counts of every moved table, sequence positions).
import { execFileSync } from "node:child_process";
import { join, resolve } from "node:path";
import pg from "pg";
import { appFixtureSql } from "../../test/fixtures/single-tenant-app.ts";
import { flag } from "./args.ts";
import { must, run, startScratchServer } from "./scratch-server.ts";

const ITEMS = flag("items", 5_000_000);
const PADDING = process.argv.includes("--padding") ? Number(process.argv[process.argv.indexOf("--padding") + 1]) : 100;
const ITEMS_PER_USER = 50;
const ROOT = resolve(import.meta.dirname, "../..");
const TENANTS_CLI = join(ROOT, "scripts/tenants/cli.ts");


const sec = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
const int = (n: number) => n.toLocaleString("en-US");
const progress = (line: string) => process.stderr.write(`[${new Date().toISOString().slice(11, 19)}] ${line}\n`);

async function main(): Promise<void> {
  if (!Number.isInteger(PADDING) || PADDING < 0) throw new Error("--padding needs a whole number, at least 0");
  const scratchServer = await startScratchServer("adopt", progress);
  const { bin, version, server } = scratchServer;
  const dumpVersion = execFileSync(join(bin, "pg_dump"), ["--version"], { encoding: "utf8" }).trim();
  try {
    const admin = new pg.Client({ connectionString: `${server}/postgres` });
    admin.on("error", () => {});
    await admin.connect();
    await admin.query("CREATE DATABASE app");
    await admin.query("CREATE DATABASE copy");
    // The dump of schema public creates it: the copy's database starts without one.
    const copyAdmin = new pg.Client({ connectionString: `${server}/copy` });
    await copyAdmin.connect();
    await copyAdmin.query("DROP SCHEMA public");
    await copyAdmin.end();
    const appUrl = `${server}/app`;
    const app = new pg.Client({ connectionString: appUrl });
    app.on("error", () => {});
    await app.connect();

    progress(`building the app database: ${int(ITEMS)} items, ${int(Math.max(1, Math.round(ITEMS / ITEMS_PER_USER)))} users`);
    const t0 = performance.now();
    await app.query(appFixtureSql({ users: Math.max(1, Math.round(ITEMS / ITEMS_PER_USER)), itemsPerUser: ITEMS_PER_USER, descriptionPadding: PADDING }));
    await app.query("VACUUM ANALYZE");
    await app.query("CHECKPOINT");
    const buildMs = performance.now() - t0;
    const size = (await app.query("SELECT pg_database_size(current_database()) AS db, pg_size_pretty(pg_database_size(current_database())) AS pretty, pg_size_pretty(pg_total_relation_size('public.items')) AS items")).rows[0];
    const items = Number((await app.query("SELECT count(*) AS n FROM public.items")).rows[0].n);
    progress(`built in ${sec(buildMs)}: ${size.pretty} (items with its indexes: ${size.items})`);

    // The naive alternative: copy the tables into a new schema with pg_dump | pg_restore.
    progress("pg_dump | pg_restore");
    const copyUrl = `${server}/copy`;
    const dumpRestore = await must(
      "pg_dump | pg_restore",
      run("bash", [
        "-c",
        `set -o pipefail; "${bin}/pg_dump" --format=custom --schema=public --no-owner "${appUrl}" | "${bin}/pg_restore" --no-owner --exit-on-error --dbname="${copyUrl}"`,
      ]),
    );
    const copy = new pg.Client({ connectionString: copyUrl });
    copy.on("error", () => {});
    await copy.connect();
    await copy.query("ALTER SCHEMA public RENAME TO tenant_copy");
    const copied = Number((await copy.query("SELECT count(*) AS n FROM tenant_copy.items")).rows[0].n);
    await copy.end();
    if (copied !== items) throw new Error(`pg_restore copied ${copied} items of ${items}`);
    await app.query("CHECKPOINT");

    // adopt, as a user runs it.
    const args = ["adopt", "acme", "--name", "Acme", "--host", "acme.example.com", "--shared", "plans"];
    progress("tenants adopt --dry-run");
    const dry = await must("adopt --dry-run", run(process.execPath, [TENANTS_CLI, ...args, "--dry-run"], { DATABASE_URL: appUrl }));
    progress("tenants adopt");
    const adopted = await must("adopt", run(process.execPath, [TENANTS_CLI, ...args, "--json"], { DATABASE_URL: appUrl }));
    const result = JSON.parse(adopted.stdout) as {
      timings: { transactionMs: number; verifyMs: number };
      verification: { ok: boolean; tables: Array<{ table: string; after: number }> };
    };
    if (!result.verification.ok) throw new Error(`adopt's verification failed: ${adopted.stdout}`);
    await app.end();
    await admin.end();

    const lines = [
      `Adopting a single-tenant database: ${int(items)} items (${int(Math.round(ITEMS / ITEMS_PER_USER))} users), ${size.pretty} (${int(Number(size.db))} bytes), ${version}`,
      "",
      `  ${"what".padEnd(52)}${"time".padStart(10)}`,
      `  ${"tenants adopt --dry-run (process)".padEnd(52)}${sec(dry.ms).padStart(10)}`,
      `  ${"tenants adopt (process, end to end)".padEnd(52)}${sec(adopted.ms).padStart(10)}`,
      `  ${"  its transaction (tables locked: the window)".padEnd(52)}${sec(result.timings.transactionMs).padStart(10)}`,
      `  ${"  its verification after commit (exact counts)".padEnd(52)}${sec(result.timings.verifyMs).padStart(10)}`,
      `  ${"pg_dump | pg_restore into a new schema".padEnd(52)}${sec(dumpRestore.ms).padStart(10)}`,
      "",
      `adopt's transaction is ${(dumpRestore.ms / result.timings.transactionMs).toFixed(0)}x shorter than the copy; the whole adopt process ` +
        `${(dumpRestore.ms / adopted.ms).toFixed(1)}x. (${dumpVersion}; building the database took ${sec(buildMs)}.)`,
    ];
    console.log(lines.join("\n"));
  } finally {
    await scratchServer.stop();
  }
}

main().catch((error) => {
  console.error(`error: ${(error as Error).message}`);
  process.exit(1);
});
