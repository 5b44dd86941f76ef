// `npm run migrations:generate -- --name <name> [--custom]`: drizzle-kit generates the next
// migration of each track from the table definitions (src/db/schema/). Tenant migrations must name
// only the placeholder schema `tenant`; output that names `public` or a real tenant schema is
// refused and removed, leaving migrations/ as it was.
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { UsageError, fail } from "../cli-support.ts";
import { MIGRATIONS_DIR, tenantStatementProblem, type Track } from "./files.ts";

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

function problems(track: Track, text: string): string[] {
  const found: string[] = [];
  for (const statement of text.split("--> statement-breakpoint")) {
    const s = statement.trim();
    if (!s) continue;
    const problem =
      track === "tenant"
        ? tenantStatementProblem(s)
        : /"public"\s*\.|\bpublic\s*\./i.test(s) || /"tenant(_[a-z0-9_]*)?"\s*\./i.test(s)
          ? "shared migrations may not name public or a tenant schema"
          : undefined;
    if (problem) found.push(`${problem}:\n    ${s.split("\n")[0]}`);
  }
  return found;
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
    const found = problems(track, readFileSync(path, "utf8"));
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
