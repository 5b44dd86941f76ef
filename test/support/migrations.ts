// Fixture migration sets for MIGRATIONS_DIR: a copy of the checkout's migrations/ in a temp dir,
// optionally cut back to its oldest files, with extra files added (and listed in the journal, as
// drizzle-kit would) or applied files edited.
import { cpSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadMigrations, type MigrationSet, type Track } from "../../scripts/migrations/files.ts";
import { REPO_ROOT } from "./database.ts";

export const CHECKOUT_MIGRATIONS = join(REPO_ROOT, "migrations");

interface Journal {
  version: string;
  dialect: string;
  entries: Array<{ idx: number; version: string; when: number; tag: string; breakpoints: boolean }>;
}

const dirs: string[] = [];

function journalPath(dir: string, track: Track): string {
  return join(dir, track, "meta", "_journal.json");
}

function readJournal(dir: string, track: Track): Journal {
  return JSON.parse(readFileSync(journalPath(dir, track), "utf8")) as Journal;
}

function writeJournal(dir: string, track: Track, journal: Journal): void {
  writeFileSync(journalPath(dir, track), JSON.stringify(journal, null, 2));
}

/** The tags of a track, in apply order, as the checkout has them. */
export function checkoutTags(track: Track): string[] {
  return readJournal(CHECKOUT_MIGRATIONS, track).entries.map((e) => e.tag);
}

/**
 * A copy of migrations/ in a fresh temp dir. `keep` cuts a track back to its first N migrations
 * (files, snapshots and journal entries after them are removed).
 */
export function fixtureMigrations(keep: Partial<Record<Track, number>> = {}): string {
  const dir = mkdtempSync(join(tmpdir(), "edge-tenants-migrations-"));
  dirs.push(dir);
  cpSync(CHECKOUT_MIGRATIONS, dir, { recursive: true });
  for (const track of ["shared", "tenant"] as const) {
    const n = keep[track];
    if (n === undefined) continue;
    const journal = readJournal(dir, track);
    for (const entry of journal.entries.slice(n)) {
      rmSync(join(dir, track, `${entry.tag}.sql`));
      const snapshot = join(dir, track, "meta", `${entry.tag.slice(0, 4)}_snapshot.json`);
      rmSync(snapshot, { force: true });
    }
    journal.entries = journal.entries.slice(0, n);
    writeJournal(dir, track, journal);
  }
  return dir;
}

/**
 * Adds `<track>/<NNNN>_<name>.sql` (the next number) with the given statements, separated by
 * drizzle-kit's breakpoints, and lists it in the journal. Returns the tag.
 */
export function addMigration(dir: string, track: Track, name: string, statements: string[]): string {
  const journal = readJournal(dir, track);
  const idx = journal.entries.length;
  const tag = `${String(idx).padStart(4, "0")}_${name}`;
  writeFileSync(join(dir, track, `${tag}.sql`), statements.join("--> statement-breakpoint\n"));
  journal.entries.push({ idx, version: "7", when: Date.now(), tag, breakpoints: true });
  writeJournal(dir, track, journal);
  return tag;
}

/** Rewrites an existing migration file with `edit` applied to its text. */
export function editMigration(dir: string, track: Track, tag: string, edit: (text: string) => string): void {
  const path = join(dir, track, `${tag}.sql`);
  const before = readFileSync(path, "utf8");
  const after = edit(before);
  if (after === before) throw new Error(`editMigration: the edit changed nothing in ${track}/${tag}.sql`);
  writeFileSync(path, after);
}

/** The migration set a CLI run with MIGRATIONS_DIR=`dir` sees, for in-process calls. */
export function migrationSet(dir: string = CHECKOUT_MIGRATIONS): MigrationSet {
  return loadMigrations(dir);
}

/** Removes every fixture dir made in this file (register with afterAll). */
export function removeFixtureMigrations(): void {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
}

/** Every file name of a fixture track (for sanity checks in tests). */
export function trackFiles(dir: string, track: Track): string[] {
  return readdirSync(join(dir, track)).filter((f) => f.endsWith(".sql")).sort();
}
