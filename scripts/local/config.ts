// Configuration of the local stack, read once from the environment (and `.env` when present).
import { existsSync } from "node:fs";
import { resolve } from "node:path";
import { z } from "zod";
import { DEFAULT_CITUS_DATA_DIR, DEFAULT_CITUS_PORT, DEFAULT_DATA_DIR, DEFAULT_PG_PORT } from "./defaults.ts";

const port = (name: string, fallback: number) =>
  z.coerce
    .number({ error: `${name} must be a TCP port number` })
    .int(`${name} must be a whole number`)
    .min(1, `${name} must be between 1 and 65535`)
    .max(65535, `${name} must be between 1 and 65535`)
    .default(fallback);

const LocalConfigSchema = z.object({
  // Empty counts as unset, as in a `.env` line `DATABASE_URL=`.
  DATABASE_URL: z.preprocess(
    (value) => (value === "" ? undefined : value),
    z
      .string()
      .regex(/^postgres(ql)?:\/\//, "DATABASE_URL must be a postgres:// or postgresql:// connection string")
      .optional(),
  ),
  LOCAL_DATA_DIR: z.string().default(DEFAULT_DATA_DIR),
  LOCAL_PG_PORT: port("LOCAL_PG_PORT", DEFAULT_PG_PORT),
  // `--citus`: the local cluster's folder, and its coordinator's port (the workers take the next two).
  LOCAL_CITUS_DATA_DIR: z.string().default(DEFAULT_CITUS_DATA_DIR),
  LOCAL_CITUS_PORT: port("LOCAL_CITUS_PORT", DEFAULT_CITUS_PORT),
  LOCAL_SQL_PORT: port("LOCAL_SQL_PORT", 4445),
  LOCAL_SQL_HOST: z.string().default("127.0.0.1"),
  LOCAL_SQL_DELAY_MS: z.coerce
    .number({ error: "LOCAL_SQL_DELAY_MS must be a number of milliseconds" })
    .min(0, "LOCAL_SQL_DELAY_MS cannot be negative")
    .default(0),
  WORKER_PORT: port("WORKER_PORT", 8787),
});

export type LocalConfig = z.infer<typeof LocalConfigSchema>;

export class LocalConfigError extends Error {}

/** Reads the environment (after `.env`, if present); a bad value throws, naming every problem. */
export function parseLocalConfig(env: NodeJS.ProcessEnv = process.env): LocalConfig {
  if (env === process.env && existsSync(resolve(".env"))) process.loadEnvFile(resolve(".env"));
  const parsed = LocalConfigSchema.safeParse(env);
  if (!parsed.success) throw new LocalConfigError(parsed.error.issues.map((issue) => issue.message).join("; "));
  return parsed.data;
}

/** As parseLocalConfig, for the long-running commands: a bad value exits 2 with one line a problem. */
export function readLocalConfig(env: NodeJS.ProcessEnv = process.env): LocalConfig {
  try {
    return parseLocalConfig(env);
  } catch (error) {
    if (!(error instanceof LocalConfigError)) throw error;
    for (const message of error.message.split("; ")) console.error(`error: ${message}`);
    process.exit(2);
  }
}

export interface StackArgs {
  /** `--delay-ms N`: ms added to every endpoint request (overrides LOCAL_SQL_DELAY_MS). */
  delayMs: number;
  /** `--show-url`: print DATABASE_URL with its password (masked otherwise). */
  showUrl: boolean;
  /** `--unsafe-listen`: allow a LOCAL_SQL_HOST that is not loopback. */
  unsafeListen: boolean;
  /** `--citus`: a local Citus cluster (coordinator + two workers) instead of the single server. */
  citus: boolean;
  /** `--hyperdrive` (npm run dev only): the Worker's Hyperdrive client instead of neon-http (docs/hyperdrive.md). */
  hyperdrive: boolean;
}

/**
 * The options of `npm run db` and `npm run dev`. A bad or unknown option exits 2 with one line
 * saying what was wrong.
 */
export function stackArgs(command: string, args: string[], config: LocalConfig): StackArgs {
  const result: StackArgs = { delayMs: config.LOCAL_SQL_DELAY_MS, showUrl: false, unsafeListen: false, citus: false, hyperdrive: false };
  const usage = `${command} takes --citus${command === "npm run dev" ? ", --hyperdrive" : ""}, --delay-ms N, --show-url and --unsafe-listen`;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === "--show-url") result.showUrl = true;
    else if (arg === "--unsafe-listen") result.unsafeListen = true;
    else if (arg === "--citus") result.citus = true;
    else if (arg === "--hyperdrive" && command === "npm run dev") result.hyperdrive = true;
    else if (arg === "--delay-ms") {
      const value = Number(args[++i]);
      if (args[i] === undefined || args[i] === "" || !Number.isFinite(value) || value < 0) {
        console.error("error: --delay-ms needs a number of milliseconds, e.g. --delay-ms 20");
        process.exit(2);
      }
      result.delayMs = value;
    } else {
      console.error(`error: unknown option ${arg}: ${usage}`);
      process.exit(2);
    }
  }
  // A Citus deployment reaches the coordinator through Hyperdrive (Neon's HTTP endpoint exists only
  // on Neon): `npm run dev -- --citus` serves the Worker the same way.
  if (result.citus && command === "npm run dev") result.hyperdrive = true;
  if (result.citus && config.DATABASE_URL) {
    console.error(
      "error: --citus starts a local Citus cluster, but DATABASE_URL is set (it names the database to serve): " +
        "unset DATABASE_URL (environment or .env) to use the local cluster, or drop --citus to serve DATABASE_URL",
    );
    process.exit(2);
  }
  return result;
}
