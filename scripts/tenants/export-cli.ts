// The tenants CLI's export and import commands. cli.ts dispatches here; the work is in export.ts.
import type pg from "pg";
import { slugError } from "../../src/tenancy/naming.ts";
import { UsageError } from "../cli-support.ts";
import type { AppRoleOptions } from "../db/roles.ts";
import { loadMigrations } from "../migrations/files.ts";
import { exportTenant, importTenant } from "./export.ts";
import { checkHosts, TenantCommandError, type QuarantinedHost } from "./operations.ts";

export const EXPORT_COMMANDS = ["export", "import"] as const;

export const EXPORT_OPTIONS = {
  out: { type: "string" },
  slug: { type: "string" },
} as const;

export const EXPORT_HELP = `  export <slug> --out <file> [--json]    Write the tenant to one file: its catalog rows, the migration it is at,
                                          its tables' rows (COPY format, streamed) and a SHA-256 checksum. The
                                          file is written as <file>.partial and renamed when complete
  import <file> --slug <slug> --host <host> [--host <host> ...] [--force] [--json]
                                          Create a tenant from an export file, in one transaction: a new schema at
                                          the file's migration, its rows and sequences, then the migrations up to
                                          head. Refuses files newer than this checkout's head; a corrupted or
                                          truncated file changes nothing. See docs/tenant-retention.md`;

type Values = Record<string, string | boolean | string[] | undefined>;

interface Plan {
  run(client: pg.Client, roles: AppRoleOptions): Promise<string[] | void>;
  changes: boolean;
}

const mb = (bytes: number) => (bytes / 1e6).toFixed(1);

export function planExportCommand(
  command: string,
  rest: string[],
  values: Values,
  changes: boolean,
  onForced: (hosts: QuarantinedHost[]) => void,
): Plan {
  const json = values.json === true;
  if (command === "export") {
    if (rest.length !== 1 || typeof values.out !== "string") throw new UsageError("usage: npm run tenants -- export <slug> --out <file> [--json]");
    const slug = rest[0]!;
    const problem = slugError(slug);
    if (problem) throw new TenantCommandError(problem);
    const out = values.out;
    return {
      changes,
      async run(client) {
        const started = performance.now();
        const result = await exportTenant(client, slug, out);
        const seconds = (performance.now() - started) / 1000;
        if (json) console.log(JSON.stringify({ ...result, seconds }, null, 2));
        else {
          console.log(
            `Exported tenant ${slug} (at tenant/${result.migration}) to ${out}: ${result.tables.map((t) => `${t.name} ${t.rows} rows`).join(", ")}; ` +
              `${mb(result.bytes)} MB in ${seconds.toFixed(1)} s, sha256 ${result.sha256}.`,
          );
        }
      },
    };
  }
  if (rest.length !== 1 || typeof values.slug !== "string" || !(values.host as string[] | undefined)?.length) {
    throw new UsageError("usage: npm run tenants -- import <file> --slug <slug> --host <host> [--host <host> ...] [--force] [--json]");
  }
  const file = rest[0]!;
  const slug = values.slug;
  const problem = slugError(slug);
  if (problem) throw new TenantCommandError(problem);
  const hosts = checkHosts(values.host as string[]);
  return {
    changes,
    async run(client, roles) {
      const started = performance.now();
      const result = await importTenant(client, loadMigrations(), { file, slug, hosts, force: values.force === true, onForced }, roles);
      const seconds = (performance.now() - started) / 1000;
      if (json) console.log(JSON.stringify({ ...result, seconds }, null, 2));
      else {
        console.log(
          `Imported ${file} as tenant ${slug} (schema ${result.tenant.schema}, ${result.tenant.status}): ` +
            `${result.tables.map((t) => `${t.name} ${t.rows} rows`).join(", ")}; at tenant/${result.fromMigration}` +
            (result.migrated.length ? `, then migrated to head (${result.migrated.join(", ")})` : " (head)") +
            `; ${mb(result.bytes)} MB in ${seconds.toFixed(1)} s.`,
        );
      }
      return result.tenant.hosts.map((h) => h.host);
    },
  };
}
