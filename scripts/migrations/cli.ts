// `npm run migrate -- [status] [--dry-run] [--json] [--batch-size N] [--tenant SLUG | --only A,B]
//   [--canary N] [--max-failures K] [--lock-timeout-ms N] [--lock-retries N] [--statement-timeout-ms N] [--wait-for-run S]`
import { parseArgs } from "node:util";
import { UsageError, fail } from "../cli-support.ts";
import { connect, databaseUrlFromEnv } from "../db/connect.ts";
import { loadMigrations, type MigrationSet } from "./files.ts";
import { readFleetSummary, readSharedApplied, readTenantStates, verifyLedger } from "./ledger.ts";
import { DEFAULT_RUN_SETTINGS, STALE_AFTER_MS, currentRun, describeRun } from "./lock.ts";
import { MigrationError, migrate, planStages, type MigrationPlan, type StageResult } from "./runner.ts";
import type pg from "pg";

const HELP = `Usage: npm run migrate -- [status] [options]

Applies pending migrations: the shared track once, then the tenant track to every tenant schema,
under an advisory lock. By default everything is ONE transaction: any error leaves every schema and
the ledger as they were. Unclaimed warm-pool schemas (\`npm run tenants -- pool fill\`) are migrated
like tenants, after them, listed as "(pool) tenant_<key>".

  status              Per track: the head, how many tenants are at which version, which are behind
  --dry-run           Print the plan; apply nothing
  --json              Machine-readable output (for CI)
  --batch-size N      Each batch of N tenants in its own transaction; a re-run resumes after a failure
  --tenant SLUG       Only this tenant (a hotfix, a canary by name); recorded in the ledger like any run
  --only A,B,...      Only these tenants
  --canary N          Staged rollout: the first N tenants in one transaction first; the rest only if
                      they succeed (in batches of --batch-size, else in one more transaction)
  --max-failures K    With --batch-size: go on past failed batches (each rolled back) until K have
                      failed (default 1: stop at the first); prints each stage's result
  --lock-timeout-ms N PostgreSQL's lock_timeout for every statement (default 3000): DDL waiting longer
                      for a table (behind a long query) gives up instead of blocking that table for
                      everyone; the transaction is rolled back and retried after a pause
  --lock-retries N    Further attempts after a lock timeout or a deadlock (default 4)
  --statement-timeout-ms N  statement_timeout for every statement (default 0: none)
  --wait-for-run S    Seconds to wait while another run or a tenant command holds the migration lock
                      (default 10); a killed run's lock is taken over ${STALE_AFTER_MS / 1000} s after it died

Exit codes: 0 done (or nothing to do), 1 failed or refused (nothing of the failed transaction kept), 2 bad usage.`;

function head(migrations: MigrationSet["tenant"]): string {
  return migrations.at(-1)?.name ?? "(none)";
}

async function status(client: pg.Client, migrations: MigrationSet, json: boolean): Promise<void> {
  const summary = await readFleetSummary(client);
  verifyLedger(summary, migrations);
  const shared = await readSharedApplied(client);
  const tenants = await readTenantStates(client);
  const versions = new Map<string, number>();
  const behind: string[] = [];
  for (const t of tenants) {
    const latest = t.applied.at(-1) ?? "(none)";
    versions.set(latest, (versions.get(latest) ?? 0) + 1);
    if (migrations.tenant.some((m) => !t.applied.includes(m.name))) behind.push(t.slug);
  }
  const sharedPending = migrations.shared.filter((m) => !shared.includes(m.name)).map((m) => m.name);
  const run = await currentRun(client);
  const report = {
    running: run ?? null,
    shared: { head: head(migrations.shared), applied: shared.length, pending: sharedPending },
    tenant: {
      head: head(migrations.tenant),
      tenants: tenants.length,
      versions: [...versions].map(([version, count]) => ({ version, count })).sort((a, b) => b.version.localeCompare(a.version)),
      behind,
    },
  };
  if (json) {
    console.log(JSON.stringify(report, null, 2));
    return;
  }
  console.log(
    `shared: ${shared.length}/${migrations.shared.length} applied, head ${report.shared.head}` +
      (sharedPending.length ? `; pending: ${sharedPending.join(", ")}` : " (at head)"),
  );
  console.log(`tenant: head ${report.tenant.head}, ${tenants.length} tenant(s)`);
  if (run) console.log(`a migration run is in progress: ${describeRun(run)}`);
  for (const v of report.tenant.versions) {
    console.log(`  ${String(v.count).padStart(7)} at ${v.version}${v.version === report.tenant.head ? " (head)" : ""}`);
  }
  if (behind.length) {
    const shown = behind.slice(0, 20).join(", ");
    console.log(`  behind: ${shown}${behind.length > 20 ? ` and ${behind.length - 20} more` : ""}`);
  }
}

function describePlan(plan: MigrationPlan): string {
  const lines: string[] = [];
  for (const m of plan.shared) lines.push(`shared: ${m.name}`);
  const byPending = new Map<string, string[]>();
  for (const t of plan.tenants) {
    const key = t.pending.map((m) => m.name).join(", ");
    byPending.set(key, [...(byPending.get(key) ?? []), t.tenant.slug]);
  }
  for (const [names, slugs] of byPending) {
    const shown = slugs.slice(0, 10).join(", ") + (slugs.length > 10 ? `, … (${slugs.length} tenants)` : "");
    lines.push(`tenant: ${names} -> ${shown}`);
  }
  return lines.join("\n");
}

function describeSlugs(slugs: string[]): string {
  return slugs.slice(0, 10).join(", ") + (slugs.length > 10 ? `, … (${slugs.length} tenants)` : "");
}

/** How a staged rollout will go: the canary, the batches, when it stops. */
function describeStages(plan: MigrationPlan, canary?: number, batchSize?: number, maxFailures?: number): string {
  const total = plan.tenants.length;
  const first = Math.min(canary ?? 0, total);
  const rest = total - first;
  const batches = rest === 0 ? 0 : batchSize ? Math.ceil(rest / batchSize) : 1;
  return (
    (first ? `stages: canary ${first} tenant(s) (${describeSlugs(plan.tenants.slice(0, first).map((t) => t.tenant.slug))}), then ` : "stages: ") +
    `${batches} batch(es)${batchSize ? ` of up to ${batchSize}` : ""} for the other ${rest} tenant(s); ` +
    (first ? "nothing after a failed canary; " : "") +
    `stop after ${maxFailures ?? 1} failed batch(es)`
  );
}

function planJson(plan: MigrationPlan) {
  return {
    shared: plan.shared.map((m) => m.name),
    tenants: plan.tenants.map((t) => ({ slug: t.tenant.slug, pending: t.pending.map((m) => m.name) })),
    upToDate: plan.upToDate,
  };
}

async function main(argv: string[]): Promise<void> {
  const { values, positionals } = (() => {
    try {
      return parseArgs({
        args: argv,
        allowPositionals: true,
        options: {
          "dry-run": { type: "boolean", default: false },
          json: { type: "boolean", default: false },
          "batch-size": { type: "string" },
          tenant: { type: "string" },
          only: { type: "string" },
          canary: { type: "string" },
          "max-failures": { type: "string" },
          "lock-timeout": { type: "string" },
          "lock-timeout-ms": { type: "string" },
          "lock-retries": { type: "string" },
          "statement-timeout-ms": { type: "string" },
          "wait-for-run": { type: "string" },
          help: { type: "boolean", short: "h", default: false },
        },
      });
    } catch (error) {
      throw new UsageError(`${(error as Error).message} (see --help)`);
    }
  })();
  if (values.help) return console.log(HELP);
  if (positionals.length > 1 || (positionals[0] && positionals[0] !== "status")) {
    throw new UsageError(`unknown argument "${positionals.join(" ")}": the only command is status (see --help)`);
  }
  let batchSize: number | undefined;
  if (values["batch-size"] !== undefined) {
    batchSize = Number(values["batch-size"]);
    if (!Number.isInteger(batchSize) || batchSize < 1) throw new UsageError("--batch-size needs a whole number of tenants, at least 1");
  }
  if (values["lock-timeout"] !== undefined) {
    throw new UsageError(
      "--lock-timeout is gone: use --wait-for-run S (seconds to wait for another run) or --lock-timeout-ms N (PostgreSQL's lock_timeout per statement)",
    );
  }
  const whole = (name: string, min: number, what: string): number | undefined => {
    const raw = values[name as keyof typeof values] as string | undefined;
    if (raw === undefined) return undefined;
    const n = Number(raw);
    if (raw.trim() === "" || !Number.isInteger(n) || n < min) throw new UsageError(`--${name} needs a whole number ${what}, at least ${min}`);
    return n;
  };
  if (values.tenant !== undefined && values.only !== undefined) throw new UsageError("give --tenant SLUG or --only A,B, not both");
  let only: string[] | undefined;
  if (values.tenant !== undefined || values.only !== undefined) {
    only = [...new Set((values.tenant ?? values.only ?? "").split(",").map((slug) => slug.trim()))];
    if (only.some((slug) => slug === "") || (values.tenant !== undefined && only.length > 1)) {
      throw new UsageError(
        values.tenant !== undefined ? "--tenant needs one tenant's slug (for several: --only a,b)" : "--only needs tenant slugs separated by commas, e.g. --only acme,globex",
      );
    }
  }
  const canary = whole("canary", 1, "of tenants");
  const maxFailures = whole("max-failures", 1, "of failed batches");
  if (maxFailures !== undefined && batchSize === undefined) {
    throw new UsageError("--max-failures counts failed batches: give --batch-size N too");
  }
  if (positionals[0] === "status" && (only || canary !== undefined || maxFailures !== undefined || batchSize !== undefined)) {
    throw new UsageError("status shows the whole fleet: it takes only --json");
  }
  const lockTimeoutMs = whole("lock-timeout-ms", 1, "of milliseconds") ?? DEFAULT_RUN_SETTINGS.lockTimeoutMs;
  const lockRetries = whole("lock-retries", 0, "of attempts") ?? DEFAULT_RUN_SETTINGS.lockRetries;
  const statementTimeoutMs = whole("statement-timeout-ms", 0, "of milliseconds (0: none)") ?? DEFAULT_RUN_SETTINGS.statementTimeoutMs;
  let waitForRunMs = DEFAULT_RUN_SETTINGS.waitForRunMs;
  if (values["wait-for-run"] !== undefined) {
    waitForRunMs = Number(values["wait-for-run"]) * 1000;
    if (values["wait-for-run"].trim() === "" || !Number.isFinite(waitForRunMs) || waitForRunMs < 0) {
      throw new UsageError("--wait-for-run needs a number of seconds, at least 0");
    }
  }

  const migrations = loadMigrations();
  const { url, local } = databaseUrlFromEnv();
  const client = await connect(url, local);
  try {
    if (positionals[0] === "status") return await status(client, migrations, values.json);
    const started = performance.now();
    const tty = process.stderr.isTTY && !values.json;
    const staged = canary !== undefined || maxFailures !== undefined;
    const stageLine = (stage: StageResult) =>
      `  ${stage.stage}${stage.tenants.length ? ` (${describeSlugs(stage.tenants)})` : ""}: ${stage.status}` +
      (stage.error ? ` - ${stage.error.split("\n")[0]}` : "");
    const result = await migrate(client, {
      migrations,
      batchSize,
      dryRun: values["dry-run"],
      lockTimeoutMs,
      lockRetries,
      statementTimeoutMs,
      waitForRunMs,
      only,
      canary,
      maxFailures,
      onStage: staged && !values.json ? (stage) => process.stdout.write(`${tty ? "\n" : ""}${stageLine(stage)}\n`) : undefined,
      onNotice: (line) => process.stderr.write(`${tty ? "\n" : ""}notice: ${line}\n`),
      onProgress: tty ? (done, total) => process.stderr.write(`\rmigrating tenants: ${done}/${total}`) : undefined,
    }).catch((error: unknown) => {
      if (tty) process.stderr.write("\n");
      if (values.json && error instanceof MigrationError && error.stages) {
        // A batched or staged run that failed part-way: CI still reads what was applied where.
        const partly = error.stages.some((stage) => stage.status === "applied");
        console.log(JSON.stringify({ applied: partly, complete: false, stages: error.stages, error: error.message }, null, 2));
      }
      if (error instanceof MigrationError && batchSize === undefined && canary === undefined && !/Nothing was applied/.test(error.message)) {
        throw new MigrationError(`${error.message}\nNothing was applied: the whole run was rolled back.`, error.tenant, error.migration);
      }
      throw error;
    });
    if (tty && result.applied) process.stderr.write("\n");
    const ms = Math.round(performance.now() - started);
    const { plan } = result;
    if (values.json) {
      console.log(
        JSON.stringify(
          {
            applied: result.applied,
            dryRun: values["dry-run"],
            transactions: result.transactions,
            durationMs: ms,
            plan: planJson(plan),
            ...(result.stages ? { stages: result.stages } : {}),
            ...(values["dry-run"] && staged
              ? { stages: planStages(plan.tenants, canary, batchSize).map((g) => ({ stage: g.name, tenants: g.plans.map((p) => p.tenant.slug) })) }
              : {}),
          },
          null,
          2,
        ),
      );
    } else if (plan.shared.length === 0 && plan.tenants.length === 0) {
      console.log(`Nothing to migrate: shared and ${plan.upToDate} tenant(s) at head. (${ms} ms)`);
    } else if (values["dry-run"]) {
      console.log(`Plan (dry run, nothing applied):\n${describePlan(plan)}${staged ? `\n${describeStages(plan, canary, batchSize, maxFailures)}` : ""}`);
    } else {
      console.log(
        `Migrated: ${plan.shared.length} shared migration(s), ${plan.tenants.length} tenant(s) ` +
          `in ${result.transactions} transaction(s). (${ms} ms)\n${describePlan(plan)}`,
      );
    }
  } finally {
    await client.end();
  }
}

main(process.argv.slice(2)).catch(fail);
