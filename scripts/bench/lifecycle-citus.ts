// bench:lifecycle --citus: the lifecycle figures on a local Citus cluster (a coordinator and two
// workers, scripts/local/citus.ts) beside the same figures on plain PostgreSQL, in one run.
//   npm run bench:lifecycle -- --citus [--tenants 1000] [--batch-size 500] [--no-fsync]
// Plain PostgreSQL is a database without the citus extension on the coordinator's own server: the
// same PostgreSQL 15 binaries, settings and disk, so the ratio is Citus' cost alone. Each figure is
// taken on both sides back to back (creation alternates tenant by tenant), with the same migration
// files: creation p50 (createTenant, what `tenants create` runs), a no-op `migrate` process, one
// ADD COLUMN tenant migration applied by `migrate` atomically (on Citus one distributed transaction
// over both workers, committed with two-phase commit) and with --batch-size.
import { rmSync } from "node:fs";
import { loadavg } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { isCitus } from "../db/citus.ts";
import { freeCitusPorts, startCitusCluster, type CitusCluster } from "../local/citus.ts";
import { loadMigrations } from "../migrations/files.ts";
import { migrate } from "../migrations/runner.ts";
import { createTenant, initDatabase } from "../tenants/operations.ts";
import { readPlacement } from "../tenants/placement.ts";

interface ProcessRun {
  code: number;
  stdout: string;
  stderr: string;
  ms: number;
}

export interface CitusBenchOptions {
  tenants: number;
  batch: number;
  noFsync: boolean;
  scratch: string;
  migrationsDir: string;
  cliCwd: string;
  migrateCli: string;
  run(command: string, args: string[], env: Record<string, string>, cwd: string): Promise<ProcessRun>;
  addTenantMigration(dir: string, name: string, statement: string): string;
  say(line?: string): void;
  progress(line: string): void;
}

const ms = (x: number) => `${x.toFixed(x < 10 ? 2 : x < 100 ? 1 : 0)} ms`;
const int = (n: number) => n.toLocaleString("en-US");
function quantile(values: number[], q: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? NaN;
}
const median = (values: number[]) => quantile(values, 0.5);
const load = () => loadavg().map((x) => x.toFixed(2)).join(" ");
/** The "(NN ms)" a migrate CLI run prints about itself (from connecting to done). */
const reported = (stdout: string) => {
  const m = /\((\d+) ms\)/.exec(stdout);
  return m ? Number(m[1]) : NaN;
};

interface Side {
  name: "plain" | "citus";
  url: string;
  client: pg.Client;
}

export async function benchCitus(o: CitusBenchOptions): Promise<void> {
  const { say, progress } = o;
  let cluster: CitusCluster | undefined;
  const sides: Side[] = [];
  try {
    progress("starting the Citus cluster (coordinator + 2 workers)");
    cluster = await startCitusCluster({ dataDir: join(o.scratch, "citus"), port: await freeCitusPorts(), ephemeral: o.noFsync, database: "bench_citus" });
    const citusUrl = cluster.url;
    const admin = await cluster.nodeClient(cluster.nodes[0]!, "postgres");
    await admin.query("CREATE DATABASE bench_plain");
    await admin.end();
    const plainUrl = new URL(citusUrl);
    plainUrl.pathname = "/bench_plain";
    for (const [name, url] of [["plain", plainUrl.toString()], ["citus", citusUrl]] as const) {
      const client = new pg.Client({ connectionString: url });
      client.on("error", () => {});
      await client.connect();
      sides.push({ name, url, client });
    }
    const [plain, citus] = sides as [Side, Side];
    if (await isCitus(plain.client)) throw new Error("bench_plain has the citus extension");
    if (!(await isCitus(citus.client))) throw new Error("bench_citus has no citus extension");

    const settings = (
      await citus.client.query<Record<string, string>>(
        `SELECT current_setting('server_version') AS version, current_setting('fsync') AS fsync,
                current_setting('synchronous_commit') AS synchronous_commit, extversion AS citus
         FROM pg_extension WHERE extname = 'citus'`,
      )
    ).rows[0]!;
    say(`bench:lifecycle --citus: ${int(o.tenants)} tenants, batch size ${o.batch}; load average at start ${load()}`);
    say(
      `Citus ${settings.citus} on PostgreSQL ${settings.version} (Debian's), coordinator + 2 workers on loopback, fsync=${settings.fsync}, ` +
        `synchronous_commit=${settings.synchronous_commit}`,
    );
    say(`plain PostgreSQL: a database without the citus extension on the coordinator's server (same binaries, settings and disk)`);

    // --- Creation, alternating tenant by tenant --------------------------------------------------
    let migrations = loadMigrations(o.migrationsDir);
    // Citus first: the app role (one per server) is created there, so Citus creates it on the workers too.
    for (const side of [citus, plain]) await initDatabase(side.client, migrations);
    const latencies: Record<Side["name"], number[]> = { plain: [], citus: [] };
    const width = String(o.tenants - 1).length;
    let nextReport = performance.now() + 10_000;
    for (let i = 0; i < o.tenants; i++) {
      const slug = `t${String(i).padStart(width, "0")}`;
      for (const side of i % 2 ? [...sides].reverse() : sides) {
        const t0 = performance.now();
        await createTenant(side.client, migrations, { slug, name: `Tenant ${slug}`, hosts: [`${slug}.bench.example.com`], usePool: false });
        latencies[side.name].push(performance.now() - t0);
      }
      if (performance.now() > nextReport) {
        progress(`created ${i + 1}/${o.tenants} tenants on each side`);
        nextReport = performance.now() + 10_000;
      }
    }
    const placement = await readPlacement(citus.client);
    const distributed = placement.tenants.filter((t) => t.distributed).length;
    const perNode = placement.nodes.map((n) => `${n.name} ${int(n.tenants)}`).join(", ");
    say();
    say(`Tenants on Citus: ${int(distributed)} of ${int(placement.tenants.length)} are distributed schemas (${perNode})`);
    if (distributed < placement.tenants.length) {
      say(`   NOTE: createTenant did not make every tenant schema a distributed schema: these are not Citus' figures`);
    }

    // --- No-op migrate ----------------------------------------------------------------------------
    const envOf = (side: Side) => ({ DATABASE_URL: side.url, MIGRATIONS_DIR: o.migrationsDir });
    const noop: Record<Side["name"], ProcessRun[]> = { plain: [], citus: [] };
    for (let i = 0; i < 3; i++) {
      for (const side of sides) {
        const r = await o.run(process.execPath, [o.migrateCli], envOf(side), o.cliCwd);
        if (r.code !== 0 || !/Nothing to migrate/.test(r.stdout)) throw new Error(`no-op migrate on ${side.name}: exit ${r.code}\n${r.stdout}${r.stderr}`);
        noop[side.name].push(r);
      }
    }

    // --- ADD COLUMN, atomic and batched -------------------------------------------------------------
    const verify = async (side: Side, tag: string, column: string) => {
      const { rows } = await side.client.query<{ ledger: number; columns: number }>(
        `SELECT (SELECT count(*)::int FROM public.schema_migrations WHERE migration = $1) AS ledger,
                (SELECT count(*)::int FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
                 WHERE n.nspname LIKE 'tenant\\_%' AND c.relname = 'items' AND a.attname = $2 AND NOT a.attisdropped) AS columns`,
        [tag, column],
      );
      if (rows[0]!.ledger !== o.tenants || rows[0]!.columns !== o.tenants) {
        throw new Error(`${tag} on ${side.name}: expected ${o.tenants} ledger rows and columns, found ${rows[0]!.ledger} and ${rows[0]!.columns}`);
      }
    };
    const settle = async (side: Side) => {
      await side.client.query("VACUUM pg_catalog.pg_class, pg_catalog.pg_attribute, pg_catalog.pg_attrdef, public.schema_migrations");
      await side.client.query("CHECKPOINT");
    };
    const addColumn = async (name: string, args: string[]) => {
      const column = `prio_${name}`;
      const tag = o.addTenantMigration(o.migrationsDir, name, `ALTER TABLE "tenant"."items" ADD COLUMN "${column}" integer DEFAULT 0 NOT NULL;`);
      migrations = loadMigrations(o.migrationsDir);
      const runs: Record<string, ProcessRun> = {};
      for (const side of sides) {
        await settle(side);
        const r = await o.run(process.execPath, [o.migrateCli, ...args], envOf(side), o.cliCwd);
        if (r.code !== 0) throw new Error(`migrate ${args.join(" ")} on ${side.name}: exit ${r.code}\n${r.stdout}${r.stderr}`);
        await verify(side, tag, column);
        runs[side.name] = r;
      }
      return runs as Record<Side["name"], ProcessRun>;
    };
    progress("ADD COLUMN runs");
    const atomic = [await addColumn("atomic_1", []), await addColumn("atomic_2", [])];
    const batched = [await addColumn("batch_1", ["--batch-size", String(o.batch)]), await addColumn("batch_2", ["--batch-size", String(o.batch)])];
    // In-process, the same migration kind once more on each side: the runner alone, no process start.
    const inProcess: Record<Side["name"], number> = { plain: 0, citus: 0 };
    {
      const column = "prio_lib_atomic";
      const tag = o.addTenantMigration(o.migrationsDir, "lib_atomic", `ALTER TABLE "tenant"."items" ADD COLUMN "${column}" integer DEFAULT 0 NOT NULL;`);
      migrations = loadMigrations(o.migrationsDir);
      for (const side of sides) {
        await settle(side);
        const t0 = performance.now();
        await migrate(side.client, { migrations });
        inProcess[side.name] = performance.now() - t0;
        await verify(side, tag, column);
      }
    }

    // --- Report ----------------------------------------------------------------------------------
    const row = (label: string, p: number, c: number, target?: number) => {
      const r = c / p;
      const verdict = target === undefined ? "    " : r <= target ? "OK  " : "MISS";
      return `   ${verdict} ${label.padEnd(58)} ${ms(p).padStart(10)}  ${ms(c).padStart(10)}  ${`${r.toFixed(2)}x`.padStart(7)}${target ? `  (target ≤ ${target}x)` : ""}`;
    };
    const medianMs = (runs: ProcessRun[]) => median(runs.map((r) => r.ms));
    say();
    say(`Side by side (${int(o.tenants)} tenants each)`.padEnd(66) + ` ${"plain".padStart(10)}  ${"Citus".padStart(10)}  ${"ratio".padStart(7)}`);
    say(row("creation p50 (createTenant)", median(latencies.plain), median(latencies.citus)));
    say(row("creation p99", quantile(latencies.plain, 0.99), quantile(latencies.citus, 0.99)));
    const best = (runs: Array<Record<Side["name"], ProcessRun>>, side: Side["name"], of: (r: ProcessRun) => number) => Math.min(...runs.map((r) => of(r[side])));
    const own = (r: ProcessRun) => reported(r.stdout);
    const whole = (r: ProcessRun) => r.ms;
    say(row("no-op migrate, whole process (median of 3)", medianMs(noop.plain), medianMs(noop.citus), 2));
    say(row("no-op migrate, the CLI's own figure (median of 3)", median(noop.plain.map(own)), median(noop.citus.map(own)), 2));
    say(row("ADD COLUMN atomic, whole process (best of 2)", best(atomic, "plain", whole), best(atomic, "citus", whole), 5));
    say(row("ADD COLUMN atomic, the CLI's own figure (best of 2)", best(atomic, "plain", own), best(atomic, "citus", own), 5));
    say(row("ADD COLUMN atomic, in-process migrate()", inProcess.plain, inProcess.citus));
    say(row(`ADD COLUMN --batch-size ${o.batch}, whole process (best of 2)`, best(batched, "plain", whole), best(batched, "citus", whole)));
    say(row(`ADD COLUMN --batch-size ${o.batch}, the CLI's own figure (best of 2)`, best(batched, "plain", own), best(batched, "citus", own)));
    say();
    say(`   (whole process: from spawning \`node scripts/migrations/cli.ts\` to its exit; the CLI's own figure: from connecting to done, as it prints it)`);
    const runs = (list: Array<Record<Side["name"], ProcessRun>>, side: Side["name"]) => list.map((r) => `${ms(r[side].ms)} (own ${ms(own(r[side]))})`).join(", ");
    say(`   runs: no-op plain ${noop.plain.map((r) => `${ms(r.ms)} (own ${ms(own(r))})`).join(", ")}; Citus ${noop.citus.map((r) => `${ms(r.ms)} (own ${ms(own(r))})`).join(", ")}`);
    say(`         atomic plain ${runs(atomic, "plain")}; Citus ${runs(atomic, "citus")}`);
    say(`         batched plain ${runs(batched, "plain")}; Citus ${runs(batched, "citus")}`);
    say(`   the atomic run on Citus is one transaction over tenants on both workers: Citus commits it with two-phase commit`);
    say(`   load average at the end ${load()}`);
  } finally {
    for (const side of sides) await side.client.end().catch(() => {});
    await cluster?.stop().catch(() => {});
    rmSync(join(o.scratch, "citus"), { recursive: true, force: true });
  }
}
