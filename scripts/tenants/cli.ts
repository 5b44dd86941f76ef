// `npm run tenants -- <command>`: initialize the database and manage tenants.
import { parseArgs } from "node:util";
import type pg from "pg";
import { parse as parseConnectionString } from "pg-connection-string";
import { RATE_LIMIT_TIERS } from "../../src/db/schema/shared.ts";
import { hostError, normalizeHost, slugError } from "../../src/tenancy/naming.ts";
import { EXIT_USAGE, UsageError, fail } from "../cli-support.ts";
import { connect, databaseUrlFromEnv } from "../db/connect.ts";
import { resolveAppRole, resolveAppStatementTimeout, type AppGrantSummary } from "../db/roles.ts";
import { loadMigrations } from "../migrations/files.ts";
import {
  DEFAULT_PERSIST_TO,
  DEFAULT_REMOTE_ENV,
  PurgeConfigError,
  purgeLocal,
  purgeRemote,
  remoteTarget,
  type PurgeOutcome,
  type RemoteTarget,
} from "./cache-purge.ts";
import {
  addHost,
  createTenant,
  endMaintenance,
  initDatabase,
  listTenants,
  maintenanceMessageError,
  removeHost,
  renameTenant,
  setRateLimitTier,
  setTenantStatus,
  showTenant,
  startMaintenance,
  TenantCommandError,
  type QuarantinedHost,
  type TenantInfo,
} from "./operations.ts";
import { DEFAULT_MEMORY_TTL_SECONDS, describeStalenessBound } from "./staleness.ts";

/** How long an isolate may keep a tenant it has in memory (never purged; TENANT_MEMORY_TTL_SECONDS). */
const MEMORY_STALENESS = `${DEFAULT_MEMORY_TTL_SECONDS} s (TENANT_MEMORY_TTL_SECONDS)`;
import { MAX_POOL_SIZE, fillPool, poolStatus } from "./pool.ts";
import { planRetentionCommand, RETENTION_COMMANDS, RETENTION_HELP, RETENTION_OPTIONS } from "./retention-cli.ts";
import { EXPORT_COMMANDS, EXPORT_HELP, EXPORT_OPTIONS, planExportCommand } from "./export-cli.ts";
import { PLACEMENT_COMMANDS, PLACEMENT_HELP, PLACEMENT_OPTIONS, planPlacementCommand } from "./placement.ts";
import { AdoptRefusal, adopt, checkAdoptInput, describePlan } from "./adopt.ts";
import {
  CustomHostnameConfigError,
  addCustomHost,
  cloudflareClient,
  customHostnameOf,
  describeStates,
  isServed,
  refreshCustomHosts,
  saasConfig,
  type SaasConfig,
} from "./custom-hostnames.ts";

const HELP = `Usage: npm run tenants -- <command> [options]

Commands:
  init [--app-role <name>]                Create the shared schema, catalog and migration ledger (at head),
                                          and the Worker's role with its grants (again on a re-run)
  create <slug> --name <name> --host <host> [--host <host> ...] [--force] [--no-pool]
                                          Create a tenant: catalog rows and a new schema tenant_<key> at head
                                          (a warm-pool slot when one is free, DML only; --no-pool: always new)
  pool fill --size <n>                    Keep n unclaimed tenant schemas created and migrated to head (the
                                          warm pool that create and the Worker's POST /signup claim); one
                                          transaction per slot; never removes slots. See docs/signup.md
  pool status [--json]                    The pool's size (unclaimed slots), how many were claimed, the head,
                                          and slots behind it (\`npm run migrate\` migrates them like tenants)
  list [--json]                           List tenants (slug, status, schema, name, hosts)
  show <slug> [--json]                    Show one tenant
  rename <slug> <new-slug>                Change a tenant's slug (a label; its schema and data stay)
  hosts add <slug> <host> [--force]       Add a host (custom domain or subdomain) to a tenant
  hosts add <slug> <host> --custom [--zone-id <id>]
                                          Register a customer's domain with Cloudflare for SaaS (needs
                                          CLOUDFLARE_API_TOKEN and the SaaS zone: --zone-id or CLOUDFLARE_ZONE_ID)
                                          and add it; the Worker serves it once Cloudflare reports it active
  hosts status [<slug>] [--json]          Refresh custom hostnames' verification and certificate status from
                                          Cloudflare, record it, and print it. See docs/custom-domains.md
  hosts remove <slug> <host>              Remove a host from a tenant
  suspend <slug>                          Suspend a tenant (its hosts answer 403 tenant_suspended)
  resume <slug>                           Resume a suspended tenant
  maintenance <slug> on [--message <text>] [--json]
                                          Put a tenant in maintenance: its hosts answer 503 tenant_maintenance
                                          with the message (a page for browsers) and Retry-After, except to
                                          requests with the bypass token it prints (header X-Maintenance-Bypass,
                                          or open https://<host>/?maintenance_bypass=<token> once in a browser).
                                          On again: a new message and token (the old token stops working)
  maintenance <slug> off                  End it
  tier <slug> standard|high               Set the tenant's request-rate tier (the Worker's TENANT_LIMITER
                                          binding for standard, TENANT_LIMITER_HIGH for high)
${RETENTION_HELP}
${EXPORT_HELP}
${PLACEMENT_HELP}
  cache purge <host> [<host> ...]         Remove hosts' cached answers from Workers KV
  adopt <slug> --name <name> --host <host> [--host <host> ...] [--shared <table>,...] [--dry-run] [--json]
                                          Turn a single-tenant database (the app's tables in public, no catalog
                                          yet) into this project's layout, its data becoming tenant <slug>: the
                                          catalog as init makes it, then every object of public moved (ALTER ...
                                          SET SCHEMA, no data copied) into a new schema tenant_<key>, or into
                                          shared for the --shared tables; one transaction under the migration
                                          lock, refused (nothing changed) unless the tables match a migration
                                          of the tenant track exactly. --dry-run prints the plan and the match
                                          and changes nothing. See docs/adopting.md

Commands that change a tenant (create, rename, hosts add/remove, suspend, resume, maintenance, tier, delete,
restore-deleted, purge-deleted, import) purge the
affected hosts from the Workers KV tenant cache, in one step per command:
  (default)        the local namespace \`wrangler dev\` uses (.wrangler/state; --persist-to <dir>)
  --remote         the deployed namespace, through Cloudflare's API: needs CLOUDFLARE_API_TOKEN, and
                   the account and namespace ids (--account-id / CLOUDFLARE_ACCOUNT_ID, --namespace-id /
                   TENANT_CACHE_NAMESPACE_ID, or wrangler.toml's [env.<--env, default production>])
  --no-purge       no purge: Workers may serve the old answer for up to ${describeStalenessBound()}
When DATABASE_URL is a database on another machine, changing commands refuse to run without
--remote or --no-purge, so a production change never leaves the deployed caches stale silently.

Each tenant's schema is named tenant_<key>, a random key assigned once and never again, even after
the tenant is deleted (shared.tenant_schemas keeps every name ever assigned).

A host removed from a tenant (hosts remove, delete) cannot be attached to another tenant until the
staleness bound (${describeStalenessBound()}) has passed, because cached answers may still send its
visitors to the old tenant until then; the refusal says when it is free. --force attaches it anyway:
for up to that bound some of its visitors may still reach the old tenant (or get its "not found").

Slugs: a lowercase letter, then up to 55 lowercase letters, digits or underscores.
The database is DATABASE_URL (environment or .env); without it, the local one from \`npm run db\`.
The CLIs connect as the owner; the Worker's role is --app-role, else APP_DATABASE_ROLE, else
edge_tenants_app (init and adopt create it NOLOGIN, or LOGIN with APP_DATABASE_PASSWORD; see docs/roles.md).
Exit codes: 0 done, 1 refused or failed (nothing changed; or changed but not purged, which the
message says), 2 bad usage.`;

function describe(t: TenantInfo): string {
  const hosts = t.hosts.map((h) => (h.primary ? `${h.host} (primary)` : h.host)).join(", ");
  return [
    `slug:    ${t.slug}`,
    `name:    ${t.name}`,
    `schema:  ${t.schema}`,
    `status:  ${t.deleted ? `deleted (suspended; purged after ${t.deleted.purgeAfter})` : t.status}`,
    `tier:    ${t.rateLimitTier}`,
    ...(t.maintenance ? [`maintenance: since ${t.maintenance.since}: ${t.maintenance.message}`] : []),
    `hosts:   ${hosts || "(none)"}`,
    `created: ${t.createdAt}`,
    `updated: ${t.updatedAt}`,
    ...(t.deleted ? [`deleted: ${t.deleted.deletedAt}`, `purge:   after ${t.deleted.purgeAfter} (undo before then: restore-deleted ${t.slug})`] : []),
  ].join("\n");
}

function table(tenants: TenantInfo[]): string {
  if (tenants.length === 0) return "No tenants yet: create one with `npm run tenants -- create <slug> --name <name> --host <host>`.";
  const anyDeleted = tenants.some((t) => t.deleted);
  const rows = tenants.map((t) => [
    t.slug,
    t.deleted ? "deleted" : t.maintenance ? `${t.status}, maintenance` : t.status,
    t.schema,
    t.name,
    t.hosts.map((h) => h.host).join(", "),
    ...(anyDeleted ? [t.deleted ? t.deleted.purgeAfter : ""] : []),
  ]);
  const head = ["SLUG", "STATUS", "SCHEMA", "NAME", "HOSTS", ...(anyDeleted ? ["PURGE AFTER"] : [])];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  return [head, ...rows].map((r) => r.map((c, i) => c.padEnd(widths[i]!)).join("  ").trimEnd()).join("\n");
}

function warnForced(hosts: QuarantinedHost[]): void {
  for (const q of hosts) {
    console.error(
      `warning: --force: host ${q.host} was removed from ${q.formerTenant} at ${q.releasedAt}; until ${q.freeAt} ` +
        "cached answers may still send some of its visitors to that tenant",
    );
  }
}

export function positionals(args: string[], count: number, usage: string): string[] {
  if (args.length !== count) throw new UsageError(`usage: npm run tenants -- ${usage}`);
  return args;
}

export function requireSlug(slug: string): string {
  const problem = slugError(slug);
  if (problem) throw new TenantCommandError(problem);
  return slug;
}

function requireHost(host: string): string {
  const problem = hostError(host);
  if (problem) throw new TenantCommandError(problem);
  return normalizeHost(host)!;
}

/**
 * Whether DATABASE_URL names a database on this machine (a loopback address or a Unix socket), read
 * the way the `pg` driver reads it. Only then is the local KV the right one to purge by default.
 */
export function isLocalDatabase(url: string): boolean {
  let host: string | undefined;
  try {
    host = parseConnectionString(url).host ?? undefined;
  } catch {
    return false;
  }
  host = (host || process.env.PGHOST || "localhost").toLowerCase();
  if (host.startsWith("/")) return true; // Unix socket
  host = host.replace(/^\[|\]$/g, "");
  return host === "localhost" || host.endsWith(".localhost") || host === "::1" || /^127(\.\d{1,3}){3}$/.test(host);
}

function databaseHost(url: string): string {
  try {
    return parseConnectionString(url).host || "default host";
  } catch {
    return "unparsable URL";
  }
}

/** What a command does once its arguments are known to be good. */
export interface Roles {
  appRole: string;
  appStatementTimeoutMs: number;
}

export interface Plan {
  /** Runs against the database; returns the hosts whose cached answers are now stale. */
  run(client: pg.Client, roles: Roles): Promise<string[] | void>;
  /** It changes tenants (so it purges). */
  changes: boolean;
}

const CHANGING_COMMANDS = new Set(["create", "rename", "hosts", "suspend", "resume", "maintenance", "tier", ...RETENTION_COMMANDS, "import"]);

async function main(argv: string[]): Promise<void> {
  const { values, positionals: args } = (() => {
    try {
      return parseArgs({
        args: argv,
        allowPositionals: true,
        options: {
          name: { type: "string" },
          host: { type: "string", multiple: true },
          json: { type: "boolean", default: false },
          yes: { type: "boolean", default: false },
          remote: { type: "boolean", default: false },
          env: { type: "string" },
          "account-id": { type: "string" },
          "namespace-id": { type: "string" },
          "persist-to": { type: "string" },
          "no-purge": { type: "boolean", default: false },
          force: { type: "boolean", default: false },
          "app-role": { type: "string" },
          shared: { type: "string", multiple: true },
          "dry-run": { type: "boolean", default: false },
          custom: { type: "boolean", default: false },
          "zone-id": { type: "string" },
          message: { type: "string" },
          size: { type: "string" },
          "no-pool": { type: "boolean", default: false },
          help: { type: "boolean", short: "h", default: false },
          ...RETENTION_OPTIONS,
          ...EXPORT_OPTIONS,
          ...PLACEMENT_OPTIONS,
        },
      });
    } catch (error) {
      throw new UsageError(`${(error as Error).message} (see --help)`);
    }
  })();
  const [command, ...rest] = args;
  if (values.help || !command) {
    console.log(HELP);
    if (!command && !values.help) process.exit(EXIT_USAGE);
    return;
  }
  const known = ["init", "create", "list", "show", "rename", "hosts", "suspend", "resume", "maintenance", "tier", "cache", "adopt", "pool", ...RETENTION_COMMANDS, ...EXPORT_COMMANDS, ...PLACEMENT_COMMANDS];
  if (!known.includes(command)) throw new UsageError(`unknown command "${command}" (see --help)`);
  if (values.remote && values["no-purge"]) throw new UsageError("--remote purges the deployed KV and --no-purge skips purging: give one of them");

  // Everything below up to `connect` only reads the arguments and the environment: bad usage and
  // bad input are answered even when no database is running.
  const remote = (): RemoteTarget => {
    try {
      return remoteTarget({ env: values.env, accountId: values["account-id"], namespaceId: values["namespace-id"] });
    } catch (error) {
      if (error instanceof PurgeConfigError) throw new UsageError(error.message);
      throw error;
    }
  };
  const persistTo = values["persist-to"] ?? DEFAULT_PERSIST_TO;
  const where = values.remote ? `deployed (${values.env ?? DEFAULT_REMOTE_ENV})` : "local";

  if (command === "cache") {
    const [action, ...hosts] = rest;
    if (action !== "purge" || hosts.length === 0) throw new UsageError("usage: npm run tenants -- cache purge <host> [<host> ...]");
    const normalized = [...new Set(hosts.map(requireHost))];
    const outcome = values.remote ? await purgeRemote(normalized, remote()) : await purgeLocal(normalized, persistTo);
    if (!outcome.purged) throw new TenantCommandError(`nothing purged: ${outcome.note}`);
    console.log(`Purged ${normalized.length} host(s) from the ${where} KV tenant cache.`);
    return;
  }

  const plan = planCommand(command, rest, values);
  const { url, local } = databaseUrlFromEnv();
  let target: RemoteTarget | undefined;
  if (plan.changes) {
    if (values.remote) target = remote();
    else if (!values["no-purge"] && !(local || isLocalDatabase(url))) {
      throw new UsageError(
        `DATABASE_URL is a database on another machine (${databaseHost(url)}), whose Workers cache tenants in the deployed KV: ` +
          "pass --remote to purge the changed hosts there (see --help), or --no-purge to skip it " +
          `(then Workers may serve the old answer for up to ${describeStalenessBound()})`,
      );
    }
  }

  // After .env is read (databaseUrlFromEnv), before connecting: a bad name is a usage error.
  const roles = (() => {
    try {
      return { appRole: resolveAppRole(values["app-role"]), appStatementTimeoutMs: resolveAppStatementTimeout() };
    } catch (error) {
      throw new UsageError((error as Error).message);
    }
  })();
  const client = await connect(url, local);
  let stale: string[] = [];
  try {
    stale = (await plan.run(client, roles)) ?? [];
  } finally {
    await client.end();
  }
  if (!plan.changes || stale.length === 0) return;

  if (values["no-purge"]) {
    console.error(
      `warning: --no-purge: the KV tenant cache was not purged; Workers may serve the old answer for ${stale.join(", ")} ` +
        `for up to ${describeStalenessBound()}`,
    );
    return;
  }
  const outcome: PurgeOutcome = target ? await purgeRemote(stale, target) : await purgeLocal(stale, persistTo);
  if (outcome.purged) {
    // With --json, stdout is the command's JSON alone.
    (values.json ? console.error : console.log)(`Purged ${stale.length} host(s) from the ${where} KV tenant cache.`);
  } else if (target || !/^no local KV/.test(outcome.note ?? "")) {
    throw new TenantCommandError(
      `the change is saved, but the ${where} KV tenant cache was not purged (${outcome.note}); Workers may serve the ` +
        `old answer for up to ${describeStalenessBound()}: retry with \`npm run tenants -- cache purge ${stale.join(" ")}` +
        `${target ? " --remote" : ""}\``,
    );
  }
}


/** Checks a command's arguments (no I/O) and returns what it will do. */
function planCommand(command: string, rest: string[], values: Record<string, string | boolean | string[] | undefined>): Plan {
  const flag = (name: string) => values[name] === true;
  const text = (name: string) => values[name] as string | undefined;
  const changes = CHANGING_COMMANDS.has(command);
  const saas = (options: { zoneId?: string; needZone: boolean }): SaasConfig => {
    try {
      return saasConfig(options);
    } catch (error) {
      if (error instanceof CustomHostnameConfigError) throw new UsageError(error.message);
      throw error;
    }
  };
  if ((RETENTION_COMMANDS as readonly string[]).includes(command)) return planRetentionCommand(command, rest, values, changes);
  if ((EXPORT_COMMANDS as readonly string[]).includes(command)) return planExportCommand(command, rest, values, changes, warnForced);
  if ((PLACEMENT_COMMANDS as readonly string[]).includes(command)) return planPlacementCommand(command, rest, values);
  switch (command) {
    case "init": {
      positionals(rest, 0, "init");
      return {
        changes,
        async run(client, roles) {
          const migrations = loadMigrations();
          let grants: AppGrantSummary | undefined;
          const created = await initDatabase(client, migrations, { ...roles, onGrants: (summary) => (grants = summary) });
          console.log(
            created
              ? `Initialized: schema shared, the tenant catalog and the migration ledger (${migrations.shared.length} shared migration(s) applied).`
              : "Already initialized: schemas and migrations unchanged.",
          );
          if (grants) {
            console.log(
              `App role ${grants.role}${grants.created ? " created" : ""}: grants ${created ? "applied" : "re-applied"} on shared ` +
                `and ${grants.tenantSchemas} tenant schema(s).` +
                (grants.statementTimeoutMs === undefined
                  ? ""
                  : ` Its statements stop after ${grants.statementTimeoutMs ? `${grants.statementTimeoutMs} ms` : "no time limit"} (APP_STATEMENT_TIMEOUT_MS).`),
            );
            for (const warning of grants.warnings) console.error(`warning: ${warning}`);
          }
        },
      };
    }
    case "adopt": {
      const [slug] = positionals(rest, 1, "adopt <slug> --name <name> --host <host> [--host <host> ...] [--shared <table>,...] [--dry-run] [--json]");
      const shared = ((values.shared as string[] | undefined) ?? []).flatMap((s) => s.split(",")).map((s) => s.trim());
      const input = { slug: slug!, name: text("name") ?? "", hosts: (values.host as string[] | undefined) ?? [], shared, dryRun: flag("dry-run") };
      checkAdoptInput(input);
      return {
        changes,
        async run(client, roles) {
          let result;
          try {
            result = await adopt(client, loadMigrations(), { ...input, appRole: roles.appRole });
          } catch (error) {
            // A dry run shows the plan it could make before saying what it refuses.
            if (error instanceof AdoptRefusal && flag("dry-run") && error.plan) {
              console.log(flag("json") ? JSON.stringify({ plan: error.plan, applied: false, refused: error.message }, null, 2) : describePlan(error.plan, false));
            }
            throw error;
          }
          const { plan, verification, grants, timings } = result;
          if (flag("json")) {
            console.log(JSON.stringify(result, null, 2));
          } else {
            console.log(describePlan(plan, result.applied));
            if (!result.applied) {
              console.log("Dry run: nothing changed. Run again without --dry-run to adopt.");
            } else {
              console.log(
                `Adopted: tenant ${plan.slug} in schema ${plan.schema}, ledger at tenant/${plan.match!.migration}, ` +
                  `in ${(timings!.transactionMs / 1000).toFixed(2)} s (one transaction).`,
              );
              if (grants) console.log(`App role ${grants.role}${grants.created ? " created" : ""}: grants applied on shared and the tenant schema.`);
              for (const warning of grants?.warnings ?? []) console.error(`warning: ${warning}`);
              for (const t of verification!.tables) console.log(`  verified ${t.table}: ${t.after} rows (before: ${t.before})`);
              for (const s of verification!.sequences) console.log(`  verified sequence ${s.sequence}: ${s.after} (before: ${s.before})`);
              if (!plan.match!.head) console.log(`Next: run \`npm run migrate\` (pending for this tenant: ${plan.match!.pending.join(", ")}).`);
              console.log(`The tenant answers at ${plan.hosts.map((h) => `http://${h}/`).join(", ")} once the Worker is deployed against this database.`);
            }
          }
          if (verification && !verification.ok) {
            throw new TenantCommandError(
              "adopted and committed, but the verification after commit differs: " +
                [
                  ...verification.tables.filter((t) => t.before !== t.after).map((t) => `${t.table} had ${t.before} rows, has ${t.after}`),
                  ...verification.sequences.filter((s) => s.before !== s.after).map((s) => `sequence ${s.sequence} was at ${s.before}, is at ${s.after}`),
                ].join("; ") +
                " (did the app write during adoption?)",
            );
          }
        },
      };
    }
    case "create": {
      const [slug] = positionals(rest, 1, "create <slug> --name <name> --host <host> [--host <host> ...]");
      // A missing required option is bad usage (exit 2), like a missing <slug>.
      const name = text("name");
      const hosts = (values.host as string[] | undefined) ?? [];
      if (name === undefined) throw new UsageError('a tenant needs a display name: --name "Acme Inc."');
      if (!hosts.length) throw new UsageError(`a tenant needs at least one host: --host ${slug || "acme"}.example.com`);
      requireSlug(slug!);
      if (!name.trim()) throw new TenantCommandError('a tenant needs a display name: --name "Acme Inc."');
      if (name.trim().length > 200) throw new TenantCommandError("the display name is longer than 200 characters");
      hosts.forEach(requireHost);
      return {
        changes,
        async run(client, roles) {
          const tenant = await createTenant(
            client,
            loadMigrations(),
            { slug: slug!, name, hosts, force: flag("force"), onForced: warnForced, usePool: !flag("no-pool") },
            roles,
          );
          const how = tenant.fromPool ? "claimed a warm-pool slot" : "created a new schema";
          console.log(flag("json") ? JSON.stringify(tenant, null, 2) : `Created tenant ${tenant.slug} (${how}).\n${describe(tenant)}`);
          return tenant.hosts.map((h) => h.host);
        },
      };
    }
    case "pool":
      return planPool(rest, values);
    case "list": {
      positionals(rest, 0, "list [--json]");
      return {
        changes,
        async run(client) {
          const tenants = await listTenants(client);
          console.log(flag("json") ? JSON.stringify(tenants, null, 2) : table(tenants));
        },
      };
    }
    case "show": {
      const [slug] = positionals(rest, 1, "show <slug> [--json]");
      requireSlug(slug!);
      return {
        changes,
        async run(client) {
          const tenant = await showTenant(client, slug!);
          if (!tenant) throw new TenantCommandError(`no tenant ${slug}: see \`npm run tenants -- list\``);
          console.log(flag("json") ? JSON.stringify(tenant, null, 2) : describe(tenant));
        },
      };
    }
    case "rename": {
      const [slug, newSlug] = positionals(rest, 2, "rename <slug> <new-slug>");
      requireSlug(slug!);
      requireSlug(newSlug!);
      return {
        changes,
        async run(client) {
          const stale = await renameTenant(client, slug!, newSlug!);
          console.log(`Renamed tenant ${slug} to ${newSlug} (its schema and hosts are unchanged).`);
          return stale;
        },
      };
    }
    case "hosts": {
      const [action, slug, host] = rest;
      if (action === "status") {
        if (rest.length > 2) throw new UsageError("usage: npm run tenants -- hosts status [<slug>] [--json]");
        if (slug !== undefined) requireSlug(slug);
        const config = saas({ zoneId: text("zone-id"), needZone: false });
        return {
          changes,
          async run(client) {
            const { states, stale } = await refreshCustomHosts(client, await cloudflareClient(config), config, slug);
            console.log(flag("json") ? JSON.stringify(states, null, 2) : describeStates(states));
            return stale;
          },
        };
      }
      positionals(rest, 3, "hosts add|remove <slug> <host>");
      if (action !== "add" && action !== "remove") throw new UsageError(`unknown hosts action "${action}": use hosts add, hosts remove or hosts status`);
      if (flag("custom") && action !== "add") throw new UsageError("--custom goes with hosts add");
      requireSlug(slug!);
      requireHost(host!);
      if (action === "add" && flag("custom")) {
        const config = saas({ zoneId: text("zone-id"), needZone: true });
        return {
          changes,
          async run(client) {
            const { stale, state } = await addCustomHost(client, await cloudflareClient(config), config, slug!, host!, {
              force: flag("force"),
              onForced: warnForced,
            });
            console.log(
              `Added custom host ${state.host} to tenant ${slug}: Cloudflare custom hostname ${state.id}, hostname ${state.status}, ` +
                `certificate ${state.sslStatus ?? "unknown"}.`,
            );
            if (!isServed(state.status)) {
              console.log(
                `The Worker serves it once Cloudflare reports it active: the customer points ${state.host} at your SaaS zone ` +
                  "(CNAME, see docs/custom-domains.md); then run `npm run tenants -- hosts status " + `${slug}\`.`,
              );
            }
            return stale;
          },
        };
      }
      return {
        changes,
        async run(client) {
          if (action === "add") {
            const stale = await addHost(client, slug!, host!, { force: flag("force"), onForced: warnForced });
            console.log(`Added host ${stale[0]} to tenant ${slug}.`);
            return stale;
          }
          const custom = await customHostnameOf(client, normalizeHost(host!)!);
          const stale = await removeHost(client, slug!, host!);
          console.log(`Removed host ${stale[0]} from tenant ${slug}.`);
          if (custom) {
            console.error(
              `warning: ${stale[0]} is still registered with Cloudflare for SaaS (custom hostname ${custom.id} in zone ${custom.zoneId}): ` +
                "delete it on the zone's Custom Hostnames page (docs/custom-domains.md)",
            );
          }
          return stale;
        },
      };
    }
    case "suspend":
    case "resume": {
      const [slug] = positionals(rest, 1, `${command} <slug>`);
      requireSlug(slug!);
      const status = command === "suspend" ? "suspended" : "active";
      return {
        changes,
        async run(client) {
          const stale = await setTenantStatus(client, slug!, status);
          console.log(`Tenant ${slug} is now ${status}.`);
          return stale;
        },
      };
    }
    case "maintenance": {
      const [slug, state] = positionals(rest, 2, "maintenance <slug> on|off [--message <text>]");
      requireSlug(slug!);
      if (state !== "on" && state !== "off") throw new UsageError(`maintenance <slug> takes on or off, not "${state}"`);
      const message = text("message");
      if (state === "off" && message !== undefined) throw new UsageError("--message goes with maintenance <slug> on");
      if (message !== undefined) {
        const problem = maintenanceMessageError(message);
        if (problem) throw new UsageError(problem);
      }
      return {
        changes,
        async run(client) {
          if (state === "off") {
            const stale = await endMaintenance(client, slug!);
            console.log(
              `Tenant ${slug} is out of maintenance. Workers that hold it in memory may answer 503 for up to ${MEMORY_STALENESS}; ` +
                "its bypass token works until then.",
            );
            return stale;
          }
          const tenant = await showTenant(client, slug!);
          if (!tenant) throw new TenantCommandError(`no tenant ${slug}: see \`npm run tenants -- list\``);
          // On again without --message keeps the message it has.
          const shown = message ?? tenant.maintenance?.message ?? `${tenant.name} is down for maintenance; please try again shortly.`;
          const { token, hosts, renewed } = await startMaintenance(client, slug!, shown);
          if (flag("json")) {
            console.log(JSON.stringify({ slug, maintenance: true, renewed, message: shown.trim(), bypassToken: token }, null, 2));
          } else {
            const host = tenant.hosts.find((h) => h.primary)?.host ?? tenant.hosts[0]?.host ?? "<host>";
            console.log(
              [
                `Tenant ${slug} is in maintenance${renewed ? " (already was: a new token; the old one stops working)" : ""}: ` +
                  `its hosts answer 503 tenant_maintenance: "${shown.trim()}"`,
                ...(tenant.status === "suspended" ? [`Note: ${slug} is also suspended: its hosts answer 403 tenant_suspended until \`resume\`.`] : []),
                `Workers that hold ${slug} in memory take up to ${MEMORY_STALENESS} to see this (the old state and token work until then).`,
                `Bypass token (shown once; valid at ${slug}'s hosts only, until maintenance is switched off or on again):`,
                `  ${token}`,
                `Send it as the X-Maintenance-Bypass header, or open https://${host}/?maintenance_bypass=<token> once in a browser.`,
              ].join("\n"),
            );
          }
          return hosts;
        },
      };
    }
    case "tier": {
      const [slug, tier] = positionals(rest, 2, "tier <slug> standard|high");
      requireSlug(slug!);
      if (!(RATE_LIMIT_TIERS as readonly string[]).includes(tier!)) {
        throw new UsageError(`unknown rate limit tier "${tier}": use ${RATE_LIMIT_TIERS.join(" or ")}`);
      }
      return {
        changes,
        async run(client) {
          const stale = await setRateLimitTier(client, slug!, tier!);
          console.log(`Tenant ${slug} is now on the ${tier} request-rate tier.`);
          return stale;
        },
      };
    }
  }
  throw new UsageError(`unknown command "${command}" (see --help)`);
}

/** `pool fill --size <n>` and `pool status [--json]`. */
function planPool(rest: string[], values: Record<string, string | boolean | string[] | undefined>): Plan {
  const [action] = positionals(rest, 1, "pool fill --size <n> | pool status [--json]");
  if (action === "status") {
    return {
      changes: false,
      async run(client) {
        const migrations = loadMigrations();
        const status = await poolStatus(client, migrations);
        if (values.json) return void console.log(JSON.stringify(status, null, 2));
        console.log(`pool: ${status.size} unclaimed slot(s) (${status.claimed} claimed so far), head tenant/${status.head ?? "(none)"}`);
        if (status.behind.length) {
          console.log(`  ${status.behind.length} slot(s) behind head: run \`npm run migrate\` (${status.behind.slice(0, 5).join(", ")}${status.behind.length > 5 ? ", ..." : ""})`);
        }
      },
    };
  }
  if (action !== "fill") throw new UsageError(`unknown pool action "${action}": use pool fill --size <n> or pool status`);
  const raw = values.size as string | undefined;
  if (raw === undefined) throw new UsageError("pool fill needs the number of unclaimed slots to keep: --size 100");
  const size = Number(raw);
  if (!/^\d+$/.test(raw) || size > MAX_POOL_SIZE) {
    throw new UsageError(`--size must be a whole number from 0 to ${MAX_POOL_SIZE}, not "${raw}"`);
  }
  return {
    changes: false,
    async run(client, roles) {
      const started = performance.now();
      const tty = process.stderr.isTTY;
      const result = await fillPool(client, loadMigrations(), size, roles, (done, total) => {
        if (tty) process.stderr.write(`\rcreating pool slots: ${done}/${total}`);
      });
      if (tty && result.created) process.stderr.write("\n");
      const seconds = ((performance.now() - started) / 1000).toFixed(2);
      console.log(
        result.created
          ? `Pool filled: created ${result.created} slot(s) at head in ${seconds} s; ${result.size} unclaimed now.`
          : `Pool already has ${result.size} unclaimed slot(s) (asked for ${size}): nothing created.`,
      );
    },
  };
}

main(process.argv.slice(2)).catch(fail);
