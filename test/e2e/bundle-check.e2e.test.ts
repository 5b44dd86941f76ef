// The production bundle check that .ci/run runs (scripts/ci/bundle-check.ts): a real
// `wrangler deploy --dry-run` of small fixture Workers, one per way to fail, and one that passes.
import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, describe, expect, it, vi } from "vitest";
import { BUNDLE_BUDGET_BYTES, problems } from "../../scripts/ci/bundle-check.ts";
import { REPO_ROOT, runScript, show } from "../support/database.ts";

/** The budget as the check prints it ("360.0"), escaped for a RegExp. */
const BUDGET = (BUNDLE_BUDGET_BYTES / 1024).toFixed(1).replace(".", "\\.");

// Each case starts wrangler (esbuild): seconds each on a loaded machine.
vi.setConfig({ testTimeout: 180_000 });

const CHECK = resolve(REPO_ROOT, "scripts/ci/bundle-check.ts");
const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

/** A Worker project of one module, with a production environment, as wrangler.toml describes it. */
function fixture(source: string, flags: string[] = []): string {
  const dir = mkdtempSync(join(tmpdir(), "edge-tenants-bundle-fixture-"));
  dirs.push(dir);
  mkdirSync(join(dir, "src"));
  writeFileSync(join(dir, "src/index.ts"), source);
  writeFileSync(
    join(dir, "wrangler.toml"),
    [
      'name = "bundle-fixture"',
      'main = "src/index.ts"',
      'compatibility_date = "2026-11-01"',
      ...(flags.length ? [`compatibility_flags = ${JSON.stringify(flags)}`] : []),
      "[env.production]",
      'name = "bundle-fixture"',
    ].join("\n"),
  );
  return join(dir, "wrangler.toml");
}

const check = (config: string) => runScript(CHECK, ["--config", config], { databaseUrl: "" });

describe.concurrent("bundle-check", () => {
  it("fails, with wrangler's report, when the bundle does not build", async () => {
    const r = await check(fixture(`import { helper } from "./missing.ts";\nexport default { fetch: () => new Response(helper()) };\n`));
    expect(r.code, show(r)).toBe(1);
    expect(r.stdout).toBe("");
    expect(r.stderr.split("\n")[0]).toBe("error: the production bundle does not build (wrangler deploy --dry-run failed); wrangler said:");
    expect(r.stderr).toContain("./missing.ts");
  });

  it("fails when the bundle imports a Node built-in (wrangler builds it, leaving the import to fail at run time)", async () => {
    const r = await check(fixture(`import { readFileSync } from "node:fs";\nexport default { fetch: () => new Response(readFileSync("/etc/hostname")) };\n`));
    expect(r.code, show(r)).toBe(1);
    expect(r.stderr).toBe(
      "error: the bundle imports Node built-in module(s) node:fs that the Worker's runtime does not provide " +
        "(no nodejs_compat, or one workerd does not run even with it); keep Node-only code in scripts/ (the CLIs), out of what src/index.ts imports\n",
    );
  });

  it("with nodejs_compat, accepts what workerd provides (the TCP driver's net, tls) and still fails on what it does not run", async () => {
    const socket = `import { connect } from "node:net";\nexport default { fetch: () => new Response(typeof connect) };\n`;
    const ok = await check(fixture(socket, ["nodejs_compat"]));
    expect(ok.code, show(ok)).toBe(0);
    const spawning = `import { execSync } from "node:child_process";\nexport default { fetch: () => new Response(String(execSync("id"))) };\n`;
    const refused = await check(fixture(spawning, ["nodejs_compat"]));
    expect(refused.code, show(refused)).toBe(1);
    expect(refused.stderr).toContain("error: the bundle imports Node built-in module(s) node:child_process that the Worker's runtime does not provide");
  });

  it("accepts node:async_hooks only when the nodejs_als flag provides it (the app's request telemetry uses it)", async () => {
    const source = `import { AsyncLocalStorage } from "node:async_hooks";\nconst als = new AsyncLocalStorage();\nexport default { fetch: () => als.run(1, () => new Response("ok")) };\n`;
    const withFlag = await check(fixture(source, ["nodejs_als"]));
    expect(withFlag.code, show(withFlag)).toBe(0);
    expect(withFlag.stderr).toBe("");
    const without = await check(fixture(source));
    expect(without.code, show(without)).toBe(1);
    expect(without.stderr).toContain("error: the bundle imports Node built-in module(s) node:async_hooks");
  });

  it("fails above the gzip budget, and prints the size", async () => {
    // Random bytes do not compress: base64 of N random bytes gzips to about N bytes (6 bits a character).
    const blob = randomBytes(Math.round(BUNDLE_BUDGET_BYTES * 1.2)).toString("base64");
    const r = await check(fixture(`const blob = "${blob}";\nexport default { fetch: () => new Response(String(blob.length)) };\n`));
    expect(r.code, show(r)).toBe(1);
    expect(r.stdout).toMatch(new RegExp(`^bundle \\(production\\): index\\.js: [\\d.]+ KiB, gzip [\\d.]+ KiB \\(budget ${BUDGET} KiB, \\d+% used\\)\n$`));
    expect(r.stderr).toMatch(new RegExp(`^error: the bundle is [\\d.]+ KiB gzipped, over its budget of ${BUDGET} KiB \\(scripts/ci/bundle-check\\.ts\\): `));
  });

  it("passes a small Worker and prints its size", async () => {
    const r = await check(fixture(`export default { fetch: () => new Response("ok") };\n`));
    expect(r.code, show(r)).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`^bundle \\(production\\): index\\.js: [\\d.]+ KiB, gzip 0\\.\\d KiB \\(budget ${BUDGET} KiB, 0% used\\)\n$`));
    expect(r.stderr).toBe("");
  });

  it("the verdict: every problem on a line of its own", () => {
    const report = { files: ["index.js"], rawBytes: 1, gzipBytes: BUNDLE_BUDGET_BYTES + 1, nodeImports: ["fs", "node:net"] };
    expect(problems(report)).toHaveLength(2);
    expect(problems({ ...report, gzipBytes: BUNDLE_BUDGET_BYTES, nodeImports: [] })).toEqual([]);
    expect(problems({ files: [], rawBytes: 0, gzipBytes: 0, nodeImports: [] })).toEqual(["wrangler wrote no module: nothing to check"]);
  });
});
