// The project runs `node scripts/*.ts` directly, which needs Node 22.18 or newer (type stripping by
// default): package.json says so, and CI installs Node 22 from npm when the machine's is older.
import { spawnSync } from "node:child_process";
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, describe, expect, it } from "vitest";

const scratch: string[] = [];
afterAll(async () => {
  for (const dir of scratch) await rm(dir, { recursive: true, force: true });
});

/**
 * Runs a copy of .ci/run in an empty folder with a fake `node` reporting `version` and fake `npm`
 * and `apt-get` that record their arguments and fail (so nothing is installed or run for real).
 */
async function ciWithNode(version: string) {
  const dir = await mkdtemp(join(tmpdir(), "edge-tenants-ci-"));
  scratch.push(dir);
  mkdirSync(join(dir, ".ci"));
  writeFileSync(join(dir, ".ci/run"), readFileSync(resolve(".ci/run")));
  const bin = join(dir, "fake-bin");
  mkdirSync(bin);
  const log = join(dir, "calls.log");
  const fake = (name: string, body: string) => {
    writeFileSync(join(bin, name), `#!/bin/sh\n${body}\n`);
    chmodSync(join(bin, name), 0o755);
  };
  fake("node", `echo v${version}`);
  fake("npm", `echo "npm $*" >> "${log}"; exit 3`);
  fake("apt-get", `echo "apt-get $*" >> "${log}"; exit 3`);
  const run = spawnSync("bash", [join(dir, ".ci/run")], {
    encoding: "utf8",
    env: { PATH: `${bin}:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin`, HOME: dir },
  });
  let calls: string[] = [];
  try {
    calls = readFileSync(log, "utf8").trim().split("\n");
  } catch {}
  return { ...run, calls, dir };
}

describe("the Node version", () => {
  it("package.json requires 22.18 or newer", () => {
    expect(JSON.parse(readFileSync(resolve("package.json"), "utf8")).engines.node).toBe(">=22.18.0");
  });

  it.each(["22.17.1", "22.9.0", "20.19.0"])("CI installs node@22 from npm when the machine has %s", async (version) => {
    const ci = await ciWithNode(version);
    expect(ci.stdout).toContain(`ci: Node v${version} is older than 22.18; installing node@22 from the npm registry`);
    expect(ci.calls[0]).toBe(`npm install --global --prefix ${ci.dir}/.local/node22 --no-audit --no-fund node@22`);
  });

  it.each(["22.18.0", "22.20.1", "24.3.0"])("CI keeps the machine's Node %s", async (version) => {
    const ci = await ciWithNode(version);
    expect(ci.stdout).toContain(`ci: node v${version}`);
    expect(ci.stdout).not.toContain("installing node@22");
    expect(ci.calls.some((call) => call.includes("node@22"))).toBe(false);
  });
});
