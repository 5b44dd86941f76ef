// Migration files of the two tracks, as drizzle-kit writes them: `migrations/<track>/NNNN_name.sql`
// listed in order in `meta/_journal.json`, statements separated by `--> statement-breakpoint`.
import { createHash } from "node:crypto";
import { existsSync, readFileSync, readdirSync } from "node:fs";
import { join, resolve } from "node:path";
import { PLACEHOLDER_SCHEMA, quoteIdent } from "../../src/tenancy/naming.ts";

export type Track = "shared" | "tenant";

export interface Migration {
  track: Track;
  /** The file name without `.sql`, e.g. `0001_item_status`. Sorted order is apply order. */
  name: string;
  checksum: string;
  statements: string[];
}

export interface MigrationSet {
  shared: Migration[];
  tenant: Migration[];
}

/** `migrations/` of this checkout; MIGRATIONS_DIR points elsewhere (tests use fixture sets). */
export const MIGRATIONS_DIR = process.env.MIGRATIONS_DIR
  ? resolve(process.env.MIGRATIONS_DIR)
  : resolve(import.meta.dirname, "../../migrations");

const PLACEHOLDER_QUALIFIER = `${quoteIdent(PLACEHOLDER_SCHEMA)}.`;

export class MigrationFileError extends Error {}

/** Why a tenant-track statement may not be applied per tenant, or undefined when it is fine. */
export function tenantStatementProblem(statement: string): string | undefined {
  if (/"public"\s*\./i.test(statement) || /\bpublic\s*\./i.test(statement)) return "it names the public schema";
  if (/"tenant_[a-z0-9_]*"/i.test(statement) || /\btenant_[a-z0-9_]+\s*\./i.test(statement)) {
    return "it names a real tenant schema (tenant_<slug>); tenant migrations may name only the placeholder schema \"tenant\"";
  }
  if (/\bCREATE\s+SCHEMA\b|\bDROP\s+SCHEMA\b/i.test(statement)) return "it creates or drops a schema";
  return undefined;
}

function readTrack(dir: string, track: Track): Migration[] {
  const trackDir = join(dir, track);
  if (!existsSync(trackDir)) return [];
  const journalPath = join(trackDir, "meta", "_journal.json");
  const files = readdirSync(trackDir).filter((f) => f.endsWith(".sql")).sort();
  const journal = existsSync(journalPath)
    ? (JSON.parse(readFileSync(journalPath, "utf8")) as { entries: Array<{ tag: string }> }).entries.map((e) => e.tag)
    : [];
  const names = files.map((f) => f.slice(0, -4));
  const unlisted = names.filter((n) => !journal.includes(n));
  const missing = journal.filter((n) => !names.includes(n));
  if (unlisted.length || missing.length) {
    throw new MigrationFileError(
      `migrations/${track}: ` +
        [
          unlisted.length ? `${unlisted.join(", ")} not in meta/_journal.json` : "",
          missing.length ? `meta/_journal.json lists missing file(s) ${missing.join(", ")}` : "",
        ]
          .filter(Boolean)
          .join("; ") +
        ": create migrations with `npm run migrations:generate` (or drizzle-kit generate --custom)",
    );
  }
  return names.map((name) => {
    const text = readFileSync(join(trackDir, `${name}.sql`), "utf8");
    const statements = text
      .split("--> statement-breakpoint")
      .map((s) => s.trim())
      .filter((s) => s.replace(/--[^\n]*/g, "").trim().length > 0);
    if (track === "tenant") {
      for (const statement of statements) {
        const problem = tenantStatementProblem(statement);
        if (problem) throw new MigrationFileError(`migrations/tenant/${name}.sql is refused: ${problem}:\n  ${statement}`);
      }
    }
    return { track, name, checksum: createHash("sha256").update(text).digest("hex"), statements };
  });
}

export function loadMigrations(dir: string = MIGRATIONS_DIR): MigrationSet {
  return { shared: readTrack(dir, "shared"), tenant: readTrack(dir, "tenant") };
}

/** A tenant-track statement with the placeholder schema replaced by the tenant's own. */
export function bindToSchema(statement: string, schemaName: string): string {
  return statement.split(PLACEHOLDER_QUALIFIER).join(`${quoteIdent(schemaName)}.`);
}

/** One SQL text (several statements) applying `migration` to `schemaName`. */
export function migrationSql(migration: Migration, schemaName: string): string {
  const statements =
    migration.track === "tenant" ? migration.statements.map((s) => bindToSchema(s, schemaName)) : migration.statements;
  return statements.map((s) => (s.endsWith(";") ? s : `${s};`)).join("\n");
}
