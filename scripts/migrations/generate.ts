// `npm run migrations:generate -- --name <name> [--custom]`: drizzle-kit generates the next
// migration of each track from the table definitions (src/db/schema/). Each new file is read with
// PostgreSQL's parser and checked as `migrate` will check it (tenant statements may name only
// objects qualified with the placeholder schema `tenant`, or read `shared`); a refused file is
// removed, leaving migrations/ as it was, and every refused statement is listed.
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { basename, join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { UsageError, fail } from "../cli-support.ts";
import { MIGRATIONS_DIR, type Track } from "./files.ts";
import { describeProblem, parseMigration } from "./sql.ts";

const HELP = `Usage: npm run migrations:generate -- --name <name> [--track shared|tenant] [--custom]

Generates the next migration of each track (or only --track) from the Drizzle table definitions:
  migrations/shared/NNNN_<name>.sql   from src/db/schema/shared.ts
  migrations/tenant/NNNN_<name>.sql   from src/db/schema/tenant.ts (against the placeholder schema "tenant")
--custom writes an empty migration to fill in by hand (data migrations, ALTER TYPE ... ADD VALUE).`;

function snapshot(dir: string): Map<string, string> {
  const files = new Map<string, string>();
  if (!existsSync(dir)) return files;
  for (const entry of readdirSync(dir, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue;
    const path = join(entry.parentPath, entry.name);
    files.set(path, readFileSync(path, "utf8"));
  }
  return files;
}

function restore(before: Map<string, string>, dir: string): void {
  for (const path of snapshot(dir).keys()) if (!before.has(path)) rmSync(path);
  for (const [path, text] of before) writeFileSync(path, text);
}

/** Every statement of a new file the track does not allow, read by PostgreSQL's parser. */
function problems(track: Track, path: string, text: string): string[] {
  const file = `migrations/${track}/${basename(path)}`;
  return parseMigration(text, track).problems.map((p) => describeProblem(file, p));
}

function generate(track: Track, name: string, custom: boolean): void {
  const dir = resolve(MIGRATIONS_DIR, track);
  const before = snapshot(dir);
  const args = ["drizzle-kit", "generate", "--config", `drizzle.${track}.config.ts`, "--name", name];
  if (custom) args.push("--custom");
  const run = spawnSync("npx", args, { stdio: "inherit" });
  if (run.status !== 0) throw new Error(`drizzle-kit generate failed for the ${track} track (exit ${run.status})`);
  const added = [...snapshot(dir).keys()].filter((p) => !before.has(p) && p.endsWith(".sql"));
  for (const path of added) {
    const found = problems(track, path, readFileSync(path, "utf8"));
    if (found.length) {
      restore(before, dir);
      throw new UsageError(
        `refused ${track} migration ${path}, and removed it:\n  ${found.join("\n  ")}\n` +
          (track === "tenant"
            ? "Tenant tables must be defined with defineTenantTables() on the placeholder schema only."
            : "Shared tables belong in the shared schema (src/db/schema/shared.ts)."),
      );
    }
    console.log(`${track}: ${path}`);
  }
  if (added.length === 0) console.log(`${track}: no changes`);
}

function main(): void {
  const { values } = parseArgs({
    options: {
      name: { type: "string" },
      track: { type: "string" },
      custom: { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  if (values.help) return console.log(HELP);
  if (!values.name || !/^[a-z0-9_]+$/.test(values.name)) {
    throw new UsageError("--name is required: lowercase letters, digits and underscores, e.g. --name add_item_priority");
  }
  if (values.track && values.track !== "shared" && values.track !== "tenant") {
    throw new UsageError(`--track is shared or tenant, not "${values.track}"`);
  }
  const tracks: Track[] = values.track ? [values.track as Track] : ["shared", "tenant"];
  for (const track of tracks) generate(track, values.name, values.custom);
}

try {
  main();
} catch (error) {
  fail(error);
}
