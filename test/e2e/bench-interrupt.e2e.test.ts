// Ctrl-C in the middle of a benchmark, as a user presses it: SIGINT to the whole foreground process
// group (npm, tsx, node). The benchmark's Worker runs in a process group of its own, which the
// terminal's signal does not reach, and its bindings (the app role's password, the session secret)
// are in a file in the temp folder: neither may outlive the benchmark.
import { execFileSync, spawn } from "node:child_process";
import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { expect, test } from "vitest";

const ROOT = resolve(import.meta.dirname, "../..");

/** Live processes in process group `pgid` (not zombies: ended, waiting for a parent to reap them). */
function groupMembers(pgid: number): string[] {
  return execFileSync("ps", ["-eo", "pid=,pgid=,stat=,comm="], { encoding: "utf8" })
    .split("\n")
    .map((line) => line.trim().split(/\s+/))
    .filter(([, group, stat]) => Number(group) === pgid && !stat?.startsWith("Z"))
    .map((fields) => fields.join(" "));
}

/** The benchmark Worker's serve-worker process (its command line names the private temp folder). */
function servingWorker(folder: string): number | undefined {
  const line = execFileSync("ps", ["-eo", "pid=,args="], { encoding: "utf8" })
    .split("\n")
    .find((l) => l.includes("serve-worker.ts") && l.includes(folder));
  return line ? Number(line.trim().split(/\s+/)[0]) : undefined;
}

test("Ctrl-C during bench:pages stops its Worker's process group and removes the Worker's bindings file", { timeout: 180_000 }, async () => {
  const folder = await mkdtemp(join(tmpdir(), "edge-tenants-interrupt-"));
  const bench = spawn("npm", ["run", "bench:pages", "--", "--requests", "1000000"], {
    cwd: ROOT,
    env: { ...process.env, TMPDIR: folder },
    detached: true,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  bench.stdout!.on("data", (d: Buffer) => (output += d.toString()));
  bench.stderr!.on("data", (d: Buffer) => (output += d.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((done) => bench.on("exit", (code, signal) => done({ code, signal })));
  let workerGroup: number | undefined;
  try {
    // Running: its Worker is up (workerd under serve-worker) and the bindings file is written.
    const deadline = Date.now() + 120_000;
    for (;;) {
      workerGroup = servingWorker(folder);
      const envFiles = (await readdir(folder)).filter((name) => name.startsWith("edge-tenants-worker-env-"));
      if (workerGroup && groupMembers(workerGroup).length > 1 && envFiles.length === 1) break;
      if (bench.exitCode !== null || Date.now() > deadline) throw new Error(`the benchmark's Worker did not start:\n${output}`);
      await sleep(250);
    }
    await sleep(2_000);

    process.kill(-bench.pid!, "SIGINT");
    const how = await Promise.race([exited, sleep(30_000).then(() => undefined)]);
    expect(how, `the benchmark did not end within 30 s of Ctrl-C:\n${output}`).toBeDefined();
    expect(how!.code === 130 || how!.signal === "SIGINT", `exit ${JSON.stringify(how)}:\n${output}`).toBe(true);

    // Nothing of its Worker runs on, and no bindings file is left behind.
    await sleep(500);
    expect(groupMembers(workerGroup)).toEqual([]);
    expect((await readdir(folder)).filter((name) => name.startsWith("edge-tenants-worker-env-"))).toEqual([]);
  } finally {
    if (workerGroup) {
      try {
        process.kill(-workerGroup, "SIGKILL");
      } catch {}
    }
    try {
      process.kill(-bench.pid!, "SIGKILL");
    } catch {}
    await rm(folder, { recursive: true, force: true });
  }
});
