// What every Node command shares: one clear line on failure, and the exit codes.
import { ConnectionError } from "./db/connect.ts";
import { AppRoleError } from "./db/roles.ts";
import { LocalConfigError } from "./local/config.ts";
import { MigrationFileError } from "./migrations/files.ts";
import { LedgerMismatchError, NotInitializedError } from "./migrations/ledger.ts";
import { LockBusyError, LockLostError, MigrationError } from "./migrations/runner.ts";
import { TenantCommandError } from "./tenants/operations.ts";

export const EXIT_REFUSED = 1;
export const EXIT_USAGE = 2;

export class UsageError extends Error {}

/** Prints `error: <message>` and exits: 2 for usage mistakes, 1 for everything refused or failed. */
export function fail(error: unknown): never {
  const known =
    error instanceof UsageError ||
    error instanceof TenantCommandError ||
    error instanceof MigrationError ||
    error instanceof LockBusyError ||
    error instanceof LockLostError ||
    error instanceof LedgerMismatchError ||
    error instanceof NotInitializedError ||
    error instanceof MigrationFileError ||
    error instanceof ConnectionError ||
    error instanceof AppRoleError ||
    error instanceof LocalConfigError;
  if (known) {
    console.error(`error: ${(error as Error).message}`);
  } else {
    const e = error as { message?: string; code?: string };
    console.error(`error: ${e.message ?? String(error)}${e.code ? ` (${e.code})` : ""}`);
  }
  process.exit(error instanceof UsageError ? EXIT_USAGE : EXIT_REFUSED);
}
