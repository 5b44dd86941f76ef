// Migration files of the two tracks, as drizzle-kit writes them: `migrations/<track>/NNNN_name.sql`
// listed in order in `meta/_journal.json`, statements separated by `--> statement-breakpoint`.
import { createHash } from "node:crypto";
import { existsSync, readFileSync, readdirSync } from "node:fs";
import { join, resolve } from "node:path";
import { bindPieces, describeProblem, parseMigration, type ParsedStatement, type Track } from "./sql.ts";

export type { Track } from "./sql.ts";

export interface Migration {
  track: Track;
  /** The file name without `.sql`, e.g. `0001_item_status`. Sorted order is apply order. */
  name: string;
  checksum: string;
  /** Each statement's text, in order. */
  statements: string[];
  /** The statements as PostgreSQL's parser read them (kinds, objects touched: the lock estimate). */
  parsed: ParsedStatement[];
  /** The file's SQL, each statement ended by `;`; tenant files: cut at each placeholder qualifier. */
  pieces: string[];
  /** Each statement on its own, cut the same way (sent one per query on Citus). */
  statementPieces: string[][];
}

export interface MigrationSet {
  shared: Migration[];
  tenant: Migration[];
}

/** `migrations/` of this checkout; MIGRATIONS_DIR points elsewhere (tests use fixture sets). */
export const MIGRATIONS_DIR = process.env.MIGRATIONS_DIR
  ? resolve(process.env.MIGRATIONS_DIR)
  : resolve(import.meta.dirname, "../../migrations");

export class MigrationFileError extends Error {}

/**
 * Parses one migration file's text with PostgreSQL's parser; throws MigrationFileError naming the
 * file, the statement, its line and the object for every statement the track does not allow.
 */
export function parseMigrationFile(track: Track, name: string, text: string): Omit<Migration, "checksum"> {
  const parsed = parseMigration(text, track);
  const file = `migrations/${track}/${name}.sql`;
  if (parsed.problems.length) {
    const [first, ...more] = parsed.problems.map((p) => describeProblem(file, p));
    throw new MigrationFileError(`${first!.replace(`${file},`, `${file} is refused:`)}${more.map((m) => `\n  ${m}`).join("")}`);
  }
  return { track, name, statements: parsed.statements.map((s) => s.text), parsed: parsed.statements, pieces: parsed.pieces, statementPieces: parsed.statementPieces };
}

/** SHA-256 of a migration file's text with its line endings normalized to LF. */
export function checksumOf(text: string): string {
  return createHash("sha256").update(text.replace(/\r\n/g, "\n")).digest("hex");
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
  const migrations = names.map((name) => {
    // Line endings do not count: a CRLF checkout (git's autocrlf on Windows) of an applied file
    // has the same checksum as the LF original; `.gitattributes` keeps *.sql LF anyway.
    const text = readFileSync(join(trackDir, `${name}.sql`), "utf8").replace(/\r\n/g, "\n");
    return { ...parseMigrationFile(track, name, text), checksum: checksumOf(text) };
  });
  for (const migration of migrations) loadedWith.set(migration, migrations);
  return migrations;
}

const loadedWith = new WeakMap<Migration, Migration[]>();

/** The whole track `migration` was loaded with, in apply order (the lock estimate models the tables from it). */
export function trackOf(migration: Migration): Migration[] | undefined {
  return loadedWith.get(migration);
}

export function loadMigrations(dir: string = MIGRATIONS_DIR): MigrationSet {
  return { shared: readTrack(dir, "shared"), tenant: readTrack(dir, "tenant") };
}

/** One SQL text (several statements) applying `migration` to `schemaName` (the tenant's schema, or shared). */
export function migrationSql(migration: Migration, schemaName: string): string {
  return migration.track === "tenant" ? bindPieces(migration.pieces, schemaName) : migration.pieces.join("");
}

/** Each statement of `migration` bound to `schemaName`, one query each. */
export function migrationStatements(migration: Migration, schemaName: string): string[] {
  return migration.statementPieces.map((pieces) => (migration.track === "tenant" ? bindPieces(pieces, schemaName) : pieces.join("")));
}

/**
 * The queries that apply `migration` to `schemaName`: the whole file in one query on PostgreSQL,
 * one statement per query on Citus (several statements in one query string fail there when they
 * include CREATE INDEX or ADD CONSTRAINT on distributed tables, citusdata/citus#6608).
 */
export function migrationQueries(migration: Migration, schemaName: string, citus: boolean): string[] {
  return citus ? migrationStatements(migration, schemaName) : [migrationSql(migration, schemaName)];
}
