// `npm run db` (tsx scripts/local/db.ts) as a user runs it, for the e2e tests of its options.
import { spawn, type ChildProcess } from "node:child_process";
import { resolve } from "node:path";

export interface DbCommandRun {
  child: ChildProcess;
  /** Its exit code. */
  exited: Promise<number | null>;
  /** Settles when `until` matches its output (stdout and stderr together), or when it exits. */
  ready: Promise<void>;
  output(): string;
}

/** Starts `npm run db -- ...args` in `cwd` with DATABASE_URL unset unless `env` sets it. */
export function startDbCommand(args: string[], env: Record<string, string>, cwd: string, until?: RegExp): DbCommandRun {
  const child = spawn(resolve("node_modules/.bin/tsx"), [resolve("scripts/local/db.ts"), ...args], {
    cwd,
    env: { ...process.env, DATABASE_URL: "", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  const exited = new Promise<number | null>((done) => child.once("exit", (code) => done(code)));
  const ready = new Promise<void>((done) => {
    const check = (d: Buffer) => {
      output += d.toString();
      if (until?.test(output)) done();
    };
    child.stdout!.on("data", check);
    child.stderr!.on("data", check);
    void exited.then(() => done());
  });
  return { child, exited, ready, output: () => output };
}
