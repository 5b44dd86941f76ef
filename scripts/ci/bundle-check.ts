// `node scripts/ci/bundle-check.ts`: builds the production bundle exactly as a deploy would
// (`wrangler deploy --dry-run --env production --outdir <tmp>`, nothing is uploaded) and fails when
// - the build fails (a syntax or type-stripping error, an import that cannot be resolved: without
//   the nodejs_compat flag, wrangler refuses `node:*` and Node's built-in modules),
// - the bundle still imports a Node built-in (`node:fs`, `fs`, ...) that wrangler.toml's
//   compatibility flags do not provide (nodejs_compat provides them all), so such an import would
//   fail at deploy or at the first request,
// - the bundle's gzip size is above BUNDLE_BUDGET_BYTES.
// It prints the raw and gzip sizes. Exit codes: 0 within budget, 1 failed, 2 bad usage.
import { spawnSync } from "node:child_process";
import { builtinModules } from "node:module";
import { mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, relative, resolve } from "node:path";
import { parseArgs } from "node:util";
import { gzipSync } from "node:zlib";
import { parse as parseToml } from "smol-toml";

/**
 * The gzip budget of the production bundle. Introduced at 320 KiB (266.5 KiB measured, wrangler
 * 4.164, main on 2026-11-27, plus 20%). Raised to 360 KiB with the Hyperdrive client
 * (docs/hyperdrive.md): the TCP driver `pg` and its parts add 43 KiB gzipped (282.4 -> 325.4 KiB
 * measured), and the budget keeps about 10% above that. Raise it on purpose, in this one place, when
 * a change is worth the bytes (and say so in docs/deploying.md).
 */
export const BUNDLE_BUDGET_BYTES = 360 * 1024;

const WRANGLER = resolve(import.meta.dirname, "../../node_modules/.bin/wrangler");

export interface BundleReport {
  files: string[];
  rawBytes: number;
  gzipBytes: number;
  /** Node built-ins the bundle imports, as written ("node:fs", "fs"). */
  nodeImports: string[];
}

const NODE_BUILTINS = new Set(builtinModules.filter((m) => !m.startsWith("_")));

/** Module specifiers a bundle imports: static `import ... from "x"`, `import "x"`, `import("x")`, `require("x")`. */
function importedSpecifiers(code: string): string[] {
  const found = new Set<string>();
  const patterns = [
    /\bimport\s+(?:[\w*${}\s,]+?\s+from\s+)?["']([^"']+)["']/g,
    /\bexport\s+(?:\*|\{[^}]*\})\s+from\s+["']([^"']+)["']/g,
    /\bimport\(\s*["']([^"']+)["']\s*\)/g,
    /\brequire\(\s*["']([^"']+)["']\s*\)/g,
  ];
  for (const pattern of patterns) for (const m of code.matchAll(pattern)) found.add(m[1]!);
  return [...found];
}

/**
 * Built-ins that workerd does not run even with `nodejs_compat` (missing, or stubs that throw on
 * use): processes, threads, the VM and inspector, UDP. The Hyperdrive client (pg) needs net, tls,
 * dns, crypto, stream, events, fs, path, util and string_decoder, which it does provide.
 */
const NOT_IN_WORKERD = new Set(["child_process", "cluster", "dgram", "inspector", "module", "repl", "sqlite", "test", "trace_events", "v8", "vm", "wasi", "worker_threads"]);

/**
 * Built-ins the Worker's compatibility flags provide (wrangler.toml's `compatibility_flags`):
 * `nodejs_als` gives `node:async_hooks` (AsyncLocalStorage); `nodejs_compat` gives the ones
 * workerd implements (not NOT_IN_WORKERD).
 */
export function providedBuiltins(config: string): (specifier: string) => boolean {
  let flags: string[] = [];
  try {
    const parsed = parseToml(readFileSync(config, "utf8")) as { compatibility_flags?: unknown };
    if (Array.isArray(parsed.compatibility_flags)) flags = parsed.compatibility_flags.map(String);
  } catch {
    // Unreadable config: wrangler's build reports it; nothing is provided here.
  }
  if (flags.includes("nodejs_compat")) return (specifier) => !NOT_IN_WORKERD.has(specifier.replace(/^node:/, "").split("/")[0]!);
  const als = flags.includes("nodejs_als");
  return (specifier) => als && (specifier === "node:async_hooks" || specifier === "async_hooks");
}

function isNodeBuiltin(specifier: string): boolean {
  if (specifier.startsWith("node:")) return true;
  return NODE_BUILTINS.has(specifier.split("/")[0]!) && !specifier.startsWith(".");
}

/** Sizes and Node imports of the modules wrangler wrote to `outdir` (source maps and README excluded). */
export function inspectBundle(outdir: string): BundleReport {
  const files = readdirSync(outdir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile() && /\.(m?js|cjs|wasm)$/.test(e.name))
    .map((e) => relative(outdir, join(e.parentPath, e.name)))
    .sort();
  let rawBytes = 0;
  let gzipBytes = 0;
  const nodeImports = new Set<string>();
  for (const file of files) {
    const bytes = readFileSync(join(outdir, file));
    rawBytes += bytes.length;
    gzipBytes += gzipSync(bytes).length;
    if (!file.endsWith(".wasm")) for (const s of importedSpecifiers(bytes.toString("utf8"))) if (isNodeBuiltin(s)) nodeImports.add(s);
  }
  return { files, rawBytes, gzipBytes, nodeImports: [...nodeImports].sort() };
}

const kib = (bytes: number) => `${(bytes / 1024).toFixed(1)} KiB`;

/** The report's verdict: the problems, one line each (none: within budget). */
export function problems(report: BundleReport, budgetBytes = BUNDLE_BUDGET_BYTES): string[] {
  const found: string[] = [];
  if (report.files.length === 0) found.push("wrangler wrote no module: nothing to check");
  if (report.nodeImports.length) {
    found.push(
      `the bundle imports Node built-in module(s) ${report.nodeImports.join(", ")} that the Worker's runtime does not provide ` +
        "(no nodejs_compat, or one workerd does not run even with it); " +
        "keep Node-only code in scripts/ (the CLIs), out of what src/index.ts imports",
    );
  }
  if (report.gzipBytes > budgetBytes) {
    found.push(
      `the bundle is ${kib(report.gzipBytes)} gzipped, over its budget of ${kib(budgetBytes)} (scripts/ci/bundle-check.ts): ` +
        "find what grew (the source map in the output folder shows which modules), or raise BUNDLE_BUDGET_BYTES there on purpose",
    );
  }
  return found;
}

/** Runs the dry-run build into a fresh folder; returns the folder, or the build's error output. */
export function build(config: string, env: string): { outdir: string } | { error: string } {
  const outdir = mkdtempSync(join(tmpdir(), "edge-tenants-bundle-"));
  const run = spawnSync(WRANGLER, ["deploy", "--dry-run", "--config", config, "--env", env, "--outdir", outdir], {
    cwd: dirname(config),
    encoding: "utf8",
    env: { ...process.env, WRANGLER_SEND_METRICS: "false", NO_COLOR: "1", FORCE_COLOR: "0" },
  });
  if (run.status !== 0) {
    rmSync(outdir, { recursive: true, force: true });
    const output = `${run.stdout ?? ""}${run.stderr ?? ""}`.trim();
    return { error: output || `wrangler exited with ${run.status ?? run.signal}` };
  }
  return { outdir };
}

function main(): number {
  let values;
  try {
    ({ values } = parseArgs({
      options: { config: { type: "string", default: "wrangler.toml" }, env: { type: "string", default: "production" } },
    }));
  } catch (error) {
    console.error(`error: ${(error as Error).message} (usage: node scripts/ci/bundle-check.ts [--config wrangler.toml] [--env production])`);
    return 2;
  }
  const config = resolve(values.config);
  const built = build(config, values.env);
  if ("error" in built) {
    // wrangler's own report (the file, the line, the unresolved import) follows the one-line verdict.
    console.error(`error: the ${values.env} bundle does not build (wrangler deploy --dry-run failed); wrangler said:`);
    console.error(built.error.split("\n").map((l) => `  ${l}`).join("\n"));
    return 1;
  }
  try {
    const provided = providedBuiltins(config);
    const inspected = inspectBundle(built.outdir);
    const report = { ...inspected, nodeImports: inspected.nodeImports.filter((s) => !provided(s)) };
    console.log(
      `bundle (${values.env}): ${report.files.join(", ")}: ${kib(report.rawBytes)}, gzip ${kib(report.gzipBytes)} ` +
        `(budget ${kib(BUNDLE_BUDGET_BYTES)}, ${((100 * report.gzipBytes) / BUNDLE_BUDGET_BYTES).toFixed(0)}% used)`,
    );
    const found = problems(report);
    for (const p of found) console.error(`error: ${p}`);
    return found.length ? 1 : 0;
  } finally {
    rmSync(built.outdir, { recursive: true, force: true });
  }
}

if (import.meta.main) process.exitCode = main();
