// The Worker's local bindings (connection strings with passwords, the session secret) go to wrangler
// in a private file (`--env-file`), never on a command line, where any user of the machine can read
// them (`ps`) and wrangler lists them. Used by `npm run dev`, the benchmarks and the tests that
// start the Worker themselves.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseEnv } from "node:util";

/**
 * A dotenv value: quoted, with `$`, quotes, backslashes and line breaks percent-encoded so that
 * neither dotenv nor its variable expansion changes it. The values are URLs, where that encoding
 * keeps the meaning, and secrets, which stay the same from one start to the next.
 */
export function dotenvValue(value: string): string {
  return `"${value.replace(/[$"'`\\\n\r]/g, (c) => encodeURIComponent(c))}"`;
}

export interface WorkerEnvFile {
  path: string;
  /** Deletes the file and its private folder. */
  remove(): void;
}

/** Writes `vars` as a dotenv file readable by its owner only, in a private folder of its own. */
export function writeWorkerEnvFile(vars: Record<string, string>): WorkerEnvFile {
  const dir = mkdtempSync(join(tmpdir(), "edge-tenants-worker-env-"));
  const path = join(dir, "worker.env");
  const lines = Object.entries(vars).map(([name, value]) => {
    if (!/^[A-Z_][A-Z0-9_]*$/.test(name)) throw new Error(`"${name}" is not a binding name (capitals, digits and _)`);
    return `${name}=${dotenvValue(value)}\n`;
  });
  writeFileSync(path, lines.join(""), { mode: 0o600 });
  return { path, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Reads a file written by writeWorkerEnvFile (or any dotenv file) back into plain values. */
export function readWorkerEnvFile(path: string): Record<string, string> {
  return parseEnv(readFileSync(path, "utf8")) as Record<string, string>;
}
