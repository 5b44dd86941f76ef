// Benchmark (not a test): what reading migrations with PostgreSQL's parser costs.
//   npm run bench:migration-parser -- [--tenants 1000] [--rounds 20]
// In one run, side by side: starting the parser (WebAssembly compile, once per process), reading
// the checkout's migrations (files + parse + check + qualifier positions), and binding every tenant
// migration to N tenant schemas (the splice of precomputed pieces) next to a plain text
// replacement of the qualifier (what the regular-expression rewrite cost, and got wrong).
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { flag } from "./args.ts";

const TENANTS = flag("tenants", 1000);
const ROUNDS = flag("rounds", 20);

const ms = (x: number) => `${x.toFixed(x < 10 ? 2 : 1)} ms`;
const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;

const started = performance.now();
const files = await import("../migrations/files.ts");
const importMs = performance.now() - started;

const loads: number[] = [];
const reads: number[] = [];
let set = files.loadMigrations();
for (let i = 0; i < ROUNDS; i++) {
  const t0 = performance.now();
  set = files.loadMigrations();
  loads.push(performance.now() - t0);
  // The file reads alone, for the floor.
  const t1 = performance.now();
  for (const track of ["shared", "tenant"] as const) {
    for (const m of set[track]) readFileSync(join(files.MIGRATIONS_DIR, track, `${m.name}.sql`), "utf8");
  }
  reads.push(performance.now() - t1);
}
const statements = set.shared.reduce((n, m) => n + m.parsed.length, 0) + set.tenant.reduce((n, m) => n + m.parsed.length, 0);

const schemas = Array.from({ length: TENANTS }, (_, i) => `tenant_${i.toString(36).padStart(12, "a")}`);
const texts = set.tenant.map((m) => readFileSync(join(files.MIGRATIONS_DIR, "tenant", `${m.name}.sql`), "utf8"));
const splice: number[] = [];
const replace: number[] = [];
let bytes = 0;
for (let r = 0; r < ROUNDS; r++) {
  const t0 = performance.now();
  for (const schema of schemas) for (const m of set.tenant) bytes += files.migrationSql(m, schema).length;
  splice.push(performance.now() - t0);
  const t1 = performance.now();
  for (const schema of schemas) for (const text of texts) bytes += text.split('"tenant".').join(`"${schema}".`).length;
  replace.push(performance.now() - t1);
}

console.log(`Migration parser (libpg-query ${JSON.parse(readFileSync(join(import.meta.dirname, "../../node_modules/libpg-query/package.json"), "utf8")).version}), medians of ${ROUNDS} rounds`);
console.log(`  start the parser (import + WebAssembly compile, once per process)  ${ms(importMs)}`);
console.log(`  load the checkout's migrations: ${set.shared.length + set.tenant.length} files, ${statements} statements`);
console.log(`    read + parse + check + qualifier positions                       ${ms(median(loads))}`);
console.log(`    the file reads alone                                             ${ms(median(reads))}`);
console.log(`  bind ${set.tenant.length} tenant migrations to ${TENANTS} schemas`);
console.log(`    splice of precomputed pieces (what the runner does)              ${ms(median(splice))}`);
console.log(`    plain text replacement (the old rewrite, for comparison)         ${ms(median(replace))}`);
if (bytes === 0) console.log("(nothing bound)");
