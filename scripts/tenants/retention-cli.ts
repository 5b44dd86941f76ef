// The tenants CLI's retention commands: delete (with a retention, or --now), restore-deleted,
// purge-deleted. cli.ts dispatches here; the work is in retention.ts.
import type pg from "pg";
import { slugError } from "../../src/tenancy/naming.ts";
import { UsageError } from "../cli-support.ts";
import { parseLocalConfig } from "../local/config.ts";
import { TenantCommandError } from "./operations.ts";
import { DEFAULT_RETENTION, deleteTenantRetained, dropTenantNow, parseRetention, purgeDeleted, restoreDeleted, type PurgedTenant } from "./retention.ts";

export const RETENTION_COMMANDS = ["delete", "restore-deleted", "purge-deleted"] as const;

export const RETENTION_OPTIONS = {
  retain: { type: "string" },
  now: { type: "boolean", default: false },
} as const;

export const RETENTION_HELP = `  delete <slug> [--retain <duration>] [--json]
                                          Delete a tenant, undoably: it is suspended at once (its hosts answer
                                          403 tenant_suspended) and keeps its schema, data and hosts until the
                                          retention has passed (--retain, else TENANT_RETENTION, else ${DEFAULT_RETENTION};
                                          a whole number and s, m, h or d: 7d, 12h, 30m, 0s)
  delete <slug> --now --yes               Drop the tenant at once: its schema with all its data, its catalog and
                                          ledger rows (irreversible; the hosts enter the quarantine below)
  restore-deleted <slug>                  Undo delete during the retention: status, schema, data and remaining
                                          hosts as they were
  purge-deleted [--json]                  Drop every deleted tenant whose retention has passed (run it from cron
                                          or CI), one tenant at a time, in transactions sized to the server's
                                          lock table; also finishes a purge that was interrupted`;

type Values = Record<string, string | boolean | string[] | undefined>;

interface Plan {
  run(client: pg.Client): Promise<string[] | void>;
  changes: boolean;
}

function oneSlug(rest: string[], usage: string): string {
  if (rest.length !== 1) throw new UsageError(`usage: npm run tenants -- ${usage}`);
  const problem = slugError(rest[0]!);
  if (problem) throw new TenantCommandError(problem);
  return rest[0]!;
}

/** The retention of a delete: --retain, else TENANT_RETENTION (environment or .env), else 7d. */
function retentionSeconds(flag: string | undefined): number {
  if (flag !== undefined) return parseRetention(flag, "--retain");
  try {
    parseLocalConfig(); // reads .env into the environment; its own problems are reported later
  } catch {
    /* reported by the database connection step */
  }
  const fromEnv = process.env.TENANT_RETENTION;
  if (fromEnv !== undefined && fromEnv !== "") return parseRetention(fromEnv, "TENANT_RETENTION");
  return parseRetention(DEFAULT_RETENTION);
}

function describePurged(t: PurgedTenant): string {
  return `Purged tenant ${t.slug}: dropped schema ${t.schema} (${t.tables} table(s) in ${t.tableBatches} transaction(s), then the schema).`;
}

export function planRetentionCommand(command: string, rest: string[], values: Values, changes: boolean): Plan {
  const json = values.json === true;
  switch (command) {
    case "delete": {
      const slug = oneSlug(rest, "delete <slug> [--retain <duration>] [--now --yes]");
      if (values.now === true) {
        if (values.retain !== undefined) throw new UsageError("--now drops the tenant at once and --retain keeps it: give one of them");
        if (values.yes !== true) {
          throw new TenantCommandError(
            `delete --now drops tenant ${slug}'s schema and all its data at once, with no way back: run again with --yes to confirm ` +
              "(or without --now to keep it restorable for the retention period)",
          );
        }
        return {
          changes,
          async run(client) {
            const result = await dropTenantNow(client, slug);
            if (!result) throw new TenantCommandError(`tenant ${slug} was restored meanwhile: nothing dropped`);
            console.log(json ? JSON.stringify(result, null, 2) : `Deleted tenant ${slug} now and dropped schema ${result.schema}.`);
            return result.hosts;
          },
        };
      }
      const seconds = retentionSeconds(values.retain as string | undefined);
      return {
        changes,
        async run(client) {
          const deleted = await deleteTenantRetained(client, slug, seconds);
          console.log(
            json
              ? JSON.stringify(deleted, null, 2)
              : `Deleted tenant ${slug}: it is suspended (its hosts answer 403 tenant_suspended); its schema ${deleted.schema}, ` +
                  `data and hosts are kept until ${deleted.purgeAfter}.\n` +
                  `Undo with \`npm run tenants -- restore-deleted ${slug}\` before then; \`npm run tenants -- purge-deleted\` drops it after.`,
          );
          return deleted.hosts;
        },
      };
    }
    case "restore-deleted": {
      const slug = oneSlug(rest, "restore-deleted <slug>");
      return {
        changes,
        async run(client) {
          const restored = await restoreDeleted(client, slug);
          console.log(
            json
              ? JSON.stringify({ slug, ...restored }, null, 2)
              : `Restored tenant ${slug}: ${restored.status}, schema ${restored.schema}, ` +
                  (restored.hosts.length ? `hosts ${restored.hosts.join(", ")}.` : "no hosts (they were removed while it was deleted): add one with `hosts add`."),
          );
          return restored.hosts;
        },
      };
    }
    case "purge-deleted": {
      if (rest.length) throw new UsageError("usage: npm run tenants -- purge-deleted [--json]");
      return {
        changes,
        async run(client) {
          const purged = await purgeDeleted(client, {
            onPurged: json ? undefined : (t) => console.log(describePurged(t)),
            onFinished: (schema) => console.error(`Finished an interrupted purge: dropped schema ${schema} (its tenant had already left the catalog).`),
          });
          if (json) console.log(JSON.stringify(purged, null, 2));
          else if (!purged.length) console.log("No deleted tenant is due: nothing purged.");
          return purged.flatMap((t) => t.hosts);
        },
      };
    }
  }
  throw new UsageError(`unknown command "${command}" (see --help)`);
}
