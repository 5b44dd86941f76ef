// `npm run tenants -- <command>`: initialize the database and manage tenants.
import { parseArgs } from "node:util";
import { EXIT_USAGE, UsageError, fail } from "../cli-support.ts";
import { connect, databaseUrlFromEnv } from "../db/connect.ts";
import { resolveAppRole, type AppGrantSummary } from "../db/roles.ts";
import { loadMigrations } from "../migrations/files.ts";
import { purgeHosts, type PurgeTarget } from "./cache-purge.ts";
import {
  addHost,
  createTenant,
  deleteTenant,
  initDatabase,
  listTenants,
  removeHost,
  renameTenant,
  setTenantStatus,
  showTenant,
  TenantCommandError,
  type QuarantinedHost,
  type TenantInfo,
} from "./operations.ts";
import { describeStalenessBound } from "./staleness.ts";

const HELP = `Usage: npm run tenants -- <command> [options]

Commands:
  init [--app-role <name>]                Create the shared schema, catalog and migration ledger (at head),
                                          and the Worker's role with its grants (again on a re-run)
  create <slug> --name <name> --host <host> [--host <host> ...] [--force]
                                          Create a tenant: catalog rows and a new schema tenant_<key> at head
  list [--json]                           List tenants (slug, status, schema, name, hosts)
  show <slug> [--json]                    Show one tenant
  rename <slug> <new-slug>                Change a tenant's slug (a label; its schema and data stay)
  hosts add <slug> <host> [--force]       Add a host (custom domain or subdomain) to a tenant
  hosts remove <slug> <host>              Remove a host from a tenant
  suspend <slug>                          Suspend a tenant (its hosts answer 403 tenant_suspended)
  resume <slug>                           Resume a suspended tenant
  delete <slug> --yes                     Drop the tenant's schema and catalog rows (irreversible)
  cache purge <host> [<host> ...]         Remove hosts' cached answers from Workers KV

Commands that change a tenant's hosts or status (and create, delete) purge the affected hosts from
the Workers KV tenant cache: by default the local one that \`wrangler dev\` uses (.wrangler/state);
with --remote the deployed namespace (wrangler environment --env, default production; needs
Cloudflare credentials). --persist-to <dir> names another local state folder; --no-purge skips it.

Each tenant's schema is named tenant_<key>, a random key assigned once and never again, even after
the tenant is deleted (shared.tenant_schemas keeps every name ever assigned).

A host removed from a tenant (hosts remove, delete) cannot be attached to another tenant until the
staleness bound (${describeStalenessBound()}) has passed, because cached answers may still send its
visitors to the old tenant until then; the refusal says when it is free. --force attaches it anyway:
for up to that bound some of its visitors may still reach the old tenant (or get its "not found").

Slugs: a lowercase letter, then up to 55 lowercase letters, digits or underscores.
The database is DATABASE_URL (environment or .env); without it, the local one from \`npm run db\`.
The CLIs connect as the owner; the Worker's role is --app-role, else APP_DATABASE_ROLE, else
edge_tenants_app (init creates it NOLOGIN, or LOGIN with APP_DATABASE_PASSWORD; see docs/roles.md).
Exit codes: 0 done, 1 refused or failed (nothing changed), 2 bad usage.`;

function describe(t: TenantInfo): string {
  const hosts = t.hosts.map((h) => (h.primary ? `${h.host} (primary)` : h.host)).join(", ");
  return [
    `slug:    ${t.slug}`,
    `name:    ${t.name}`,
    `schema:  ${t.schema}`,
    `status:  ${t.status}`,
    `hosts:   ${hosts || "(none)"}`,
    `created: ${t.createdAt}`,
    `updated: ${t.updatedAt}`,
  ].join("\n");
}

function table(tenants: TenantInfo[]): string {
  if (tenants.length === 0) return "No tenants yet: create one with `npm run tenants -- create <slug> --name <name> --host <host>`.";
  const rows = tenants.map((t) => [t.slug, t.status, t.schema, t.name, t.hosts.map((h) => h.host).join(", ")]);
  const head = ["SLUG", "STATUS", "SCHEMA", "NAME", "HOSTS"];
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

function positionals(args: string[], count: number, usage: string): string[] {
  if (args.length !== count) throw new UsageError(`usage: npm run tenants -- ${usage}`);
  return args;
}

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
          "persist-to": { type: "string" },
          "no-purge": { type: "boolean", default: false },
          force: { type: "boolean", default: false },
          "app-role": { type: "string" },
          help: { type: "boolean", short: "h", default: false },
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
  const known = ["init", "create", "list", "show", "rename", "hosts", "suspend", "resume", "delete", "cache"];
  if (!known.includes(command)) throw new UsageError(`unknown command "${command}" (see --help)`);
  const target: PurgeTarget = { remote: values.remote, env: values.env, persistTo: values["persist-to"] };
  const purge = async (hosts: string[]) => {
    if (values["no-purge"]) return;
    const outcome = await purgeHosts(hosts, target);
    if (outcome.purged) {
      console.log(`Purged ${hosts.length} host(s) from the ${values.remote ? "deployed" : "local"} KV tenant cache.`);
    } else if (values.remote || !/no local KV/.test(outcome.note ?? "")) {
      console.error(
        `warning: the change is saved, but the KV tenant cache was not purged (${outcome.note}); ` +
          "cached answers expire within the KV TTL plus the isolate TTL (see README), or run " +
          `\`npm run tenants -- cache purge ${hosts.join(" ")}${values.remote ? " --remote" : ""}\``,
      );
    }
  };
  if (command === "cache") {
    const [action, ...hosts] = rest;
    if (action !== "purge" || hosts.length === 0) throw new UsageError("usage: npm run tenants -- cache purge <host> [<host> ...]");
    const outcome = await purgeHosts(hosts.map((h) => h.toLowerCase()), target);
    if (!outcome.purged) throw new TenantCommandError(`nothing purged: ${outcome.note}`);
    console.log(`Purged ${hosts.length} host(s) from the ${values.remote ? "deployed" : "local"} KV tenant cache.`);
    return;
  }

  const migrations = loadMigrations();
  const { url, local } = databaseUrlFromEnv();
  // After .env is read (databaseUrlFromEnv), before connecting: a bad name is a usage error.
  const roles = (() => {
    try {
      return { appRole: resolveAppRole(values["app-role"]) };
    } catch (error) {
      throw new UsageError((error as Error).message);
    }
  })();
  const client = await connect(url, local);
  try {
    switch (command) {
      case "init": {
        positionals(rest, 0, "init");
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
              `and ${grants.tenantSchemas} tenant schema(s).`,
          );
          for (const warning of grants.warnings) console.error(`warning: ${warning}`);
        }
        break;
      }
      case "create": {
        const [slug] = positionals(rest, 1, "create <slug> --name <name> --host <host> [--host <host> ...]");
        // A missing required option is bad usage (exit 2), like a missing <slug>.
        if (values.name === undefined) throw new UsageError('a tenant needs a display name: --name "Acme Inc."');
        if (!values.host?.length) throw new UsageError(`a tenant needs at least one host: --host ${slug || "acme"}.example.com`);
        const tenant = await createTenant(client, migrations, {
          slug: slug!,
          name: values.name ?? "",
          hosts: values.host ?? [],
          force: values.force,
          onForced: warnForced,
        }, roles);
        console.log(values.json ? JSON.stringify(tenant, null, 2) : `Created tenant ${tenant.slug}.\n${describe(tenant)}`);
        await purge(tenant.hosts.map((h) => h.host));
        break;
      }
      case "list": {
        positionals(rest, 0, "list [--json]");
        const tenants = await listTenants(client);
        console.log(values.json ? JSON.stringify(tenants, null, 2) : table(tenants));
        break;
      }
      case "show": {
        const [slug] = positionals(rest, 1, "show <slug> [--json]");
        const tenant = await showTenant(client, slug!);
        if (!tenant) throw new TenantCommandError(`no tenant ${slug}: see \`npm run tenants -- list\``);
        console.log(values.json ? JSON.stringify(tenant, null, 2) : describe(tenant));
        break;
      }
      case "hosts": {
        const [action, slug, host] = positionals(rest, 3, "hosts add|remove <slug> <host>");
        if (action === "add") {
          const stale = await addHost(client, slug!, host!, { force: values.force, onForced: warnForced });
          console.log(`Added host ${stale[0]} to tenant ${slug}.`);
          await purge(stale);
        } else if (action === "remove") {
          const stale = await removeHost(client, slug!, host!);
          console.log(`Removed host ${stale[0]} from tenant ${slug}.`);
          await purge(stale);
        } else {
          throw new UsageError(`unknown hosts action "${action}": use hosts add or hosts remove`);
        }
        break;
      }
      case "suspend":
      case "resume": {
        const [slug] = positionals(rest, 1, `${command} <slug>`);
        const stale = await setTenantStatus(client, slug!, command === "suspend" ? "suspended" : "active");
        console.log(`Tenant ${slug} is now ${command === "suspend" ? "suspended" : "active"}.`);
        await purge(stale);
        break;
      }
      case "rename": {
        const [slug, newSlug] = positionals(rest, 2, "rename <slug> <new-slug>");
        const stale = await renameTenant(client, slug!, newSlug!);
        console.log(`Renamed tenant ${slug} to ${newSlug} (its schema and hosts are unchanged).`);
        await purge(stale);
        break;
      }
      case "delete": {
        const [slug] = positionals(rest, 1, "delete <slug> --yes");
        if (!values.yes) {
          throw new TenantCommandError(
            `deleting tenant ${slug} drops its schema and all its data: run again with --yes to confirm`,
          );
        }
        const { schema, hosts: stale } = await deleteTenant(client, slug!);
        console.log(`Deleted tenant ${slug} and schema ${schema}.`);
        await purge(stale);
        break;
      }
    }
  } finally {
    await client.end();
  }
}

main(process.argv.slice(2)).catch(fail);
