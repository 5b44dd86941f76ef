// The Worker's local bindings (connection strings with passwords, the session secret) go to wrangler
// in a private file (`--env-file`), never on a command line, where any user of the machine can read
// them (`ps`) and wrangler lists them. Used by `npm run dev`, the benchmarks and the tests that
// start the Worker themselves.
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { tempFolder } from "./temp-folder.ts";

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
  // Removed at exit if not before: the secrets must not outlive the process in the temp folder.
  const dir = tempFolder("edge-tenants-worker-env-");
  const path = join(dir.path, "worker.env");
  writeFileSync(path, lines.join(""), { mode: 0o600 });
  return { path, remove: dir.remove };
}
