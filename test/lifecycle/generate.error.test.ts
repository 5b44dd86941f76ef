// `npm run migrations:generate` checks what drizzle-kit wrote with the same parser `migrate` uses:
// a tenant table that uses an enum defined outside the tenant schema (drizzle-kit writes its type
// unqualified, so it would resolve through the search_path to public) is refused, the file is
// removed and migrations/ is left as it was. Runs in a scratch copy of the project, so the
// checkout's schema and migrations are never touched.
import { spawnSync } from "node:child_process";
import { cpSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, expect, it } from "vitest";
import { REPO_ROOT } from "../support/database.ts";

const scratch = mkdtempSync(join(tmpdir(), "edge-tenants-generate-"));

afterAll(() => rmSync(scratch, { recursive: true, force: true }));

function files(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const entry of readdirSync(dir, { recursive: true, withFileTypes: true })) {
    if (entry.isFile()) out[join(entry.parentPath, entry.name).slice(dir.length)] = readFileSync(join(entry.parentPath, entry.name), "utf8");
  }
  return out;
}

it("a tenant column typed with an enum outside the tenant schema is refused and its file removed", () => {
  for (const name of ["package.json", "drizzle.shared.config.ts", "drizzle.tenant.config.ts", "tsconfig.json"]) {
    cpSync(join(REPO_ROOT, name), join(scratch, name));
  }
  for (const dir of ["src", "scripts", "migrations"]) cpSync(join(REPO_ROOT, dir), join(scratch, dir), { recursive: true });
  symlinkSync(join(REPO_ROOT, "node_modules"), join(scratch, "node_modules"));
  const schemaFile = join(scratch, "src/db/schema/tenant.ts");
  const original = readFileSync(schemaFile, "utf8");
  const edited = original
    .replace("import { boolean, integer, pgSchema,", "import { boolean, integer, pgEnum, pgSchema,")
    .replace("export function defineTenantTables(", 'const mood = pgEnum("mood", ["calm", "busy"]);\n\nexport function defineTenantTables(')
    .replace('    title: text("title").notNull(),\n', '    title: text("title").notNull(),\n    mood: mood("mood"),\n');
  expect(edited).not.toBe(original);
  expect(edited).toContain('mood: mood("mood")');
  writeFileSync(schemaFile, edited);
  const before = files(join(scratch, "migrations"));

  const env = { ...process.env };
  delete env.MIGRATIONS_DIR;
  const run = spawnSync(process.execPath, ["scripts/migrations/generate.ts", "--name", "add_mood", "--track", "tenant"], {
    cwd: scratch,
    env,
    encoding: "utf8",
    timeout: 120_000,
  });
  expect(run.status, `${run.stdout}\n${run.stderr}`).toBe(2);
  expect(run.stderr).toMatch(/^error: refused tenant migration .*migrations\/tenant\/0003_add_mood\.sql, and removed it:\n/);
  expect(run.stderr).toContain(
    '  migrations/tenant/0003_add_mood.sql, statement 1 (line 1): type "mood" is not schema-qualified: write "tenant"."mood" ' +
      "(only PostgreSQL's built-in types may be unqualified)",
  );
  expect(files(join(scratch, "migrations"))).toEqual(before);
}, 180_000);
