// `npm run dev`: the local PostgreSQL, the SQL-over-HTTP endpoint and `wrangler dev` together.
// Ctrl-C stops all three; so does any one of them exiting, and it says which. Options:
// `--delay-ms N` adds N ms to every database request (production's edge-to-region round trips),
// `--show-url` prints DATABASE_URL with its password, `--unsafe-listen` allows a non-loopback
// LOCAL_SQL_HOST, `--hyperdrive` serves the Worker with its Hyperdrive client (docs/hyperdrive.md).
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { resolve } from "node:path";
import { workerDatabaseUrl as appRoleDatabaseUrl } from "./db/roles.ts";
import { readLocalConfig, stackArgs } from "./local/config.ts";
import { prepareDemoDatabase } from "./local/demo.ts";
import { describeStack, onShutdown, startLocalStack, type LocalStack } from "./local/stack.ts";
import { dotenvValue, writeWorkerEnvFile } from "./local/worker-env.ts";

const config = readLocalConfig();
const args = stackArgs("npm run dev", process.argv.slice(2), config);

function fail(message: string): never {
  console.error(`error: ${message}`);
  process.exit(1);
}

// The key that signs sessions and tokens: SESSION_SECRET from the environment when set (so sessions
// survive a restart), otherwise a fresh random one per start (everyone signs in again).
const sessionSecret = process.env.SESSION_SECRET || randomBytes(32).toString("hex");
if (sessionSecret.length < 32) fail("SESSION_SECRET must be at least 32 characters (e.g. `openssl rand -hex 32`), or unset for a random one");
// Checked now, before anything starts: the Worker gets it through an env file (step 3).
try {
  dotenvValue(sessionSecret, "SESSION_SECRET");
} catch (error) {
  fail(`${(error as Error).message} (e.g. \`openssl rand -hex 32\`), or unset it for a random one`);
}

// 1. The database and the endpoint (after checking that every port, wrangler's too, is free).
let stack: LocalStack;
try {
  stack = await startLocalStack(config, args, { WORKER_PORT: config.WORKER_PORT });
} catch (error) {
  fail((error as Error).message);
}
console.log(describeStack(stack, args));

// 2. Demo data goes only into the local embedded database, never into DATABASE_URL's.
let demoUrls: string[] = [];
if (stack.database.embedded) {
  try {
    demoUrls = await prepareDemoDatabase(stack.database.url);
  } catch (error) {
    await stack.stop();
    fail((error as Error).message);
  }
} else {
  console.log(
    "DATABASE_URL is set: serving that database as it is (no init, migrations or demo tenants; " +
      "run `npm run tenants -- init` and `npm run migrate` yourself)",
  );
}

// 3. The Worker's bindings, in a private file given to wrangler with --env-file: they never show
// on a command line or in wrangler's output (it lists them as hidden), and wrangler then reads no
// `.env` or `.dev.vars`, so the Node-side variables there never reach the Worker.
// The Worker connects as the app role, never as the owner (docs/roles.md): on the embedded
// database with a fresh random password each start; elsewhere APP_DATABASE_URL.
let workerDatabaseUrl: string;
try {
  workerDatabaseUrl = await appRoleDatabaseUrl(stack.database);
} catch (error) {
  await stack.stop();
  fail((error as Error).message);
}
const bindings = writeWorkerEnvFile({ DATABASE_URL: workerDatabaseUrl, LOCAL_SQL_ENDPOINT: stack.endpoint.url, SESSION_SECRET: sessionSecret });
const bindingsFile = bindings.path;
const removeBindings = bindings.remove;

// 4. wrangler dev, in its own process group so that stopping it also stops workerd under it.
// --hyperdrive: wrangler.toml's `hyperdrive` environment, whose HYPERDRIVE binding miniflare connects
// straight to the database given (as the app role) in wrangler's own environment variable; the
// Worker then uses its TCP client instead of the HTTP one.
const hyperdriveLocal = new URL(workerDatabaseUrl);
if (!hyperdriveLocal.searchParams.has("sslmode")) hyperdriveLocal.searchParams.set("sslmode", "disable");
const wrangler = spawn(
  resolve("node_modules/.bin/wrangler"),
  [
    "dev",
    "--port",
    String(config.WORKER_PORT),
    "--env-file",
    bindingsFile,
    "--show-interactive-dev-session=false",
    ...(args.hyperdrive ? ["--env", "hyperdrive"] : []),
  ],
  {
    stdio: ["ignore", "inherit", "inherit"],
    detached: true,
    env: {
      ...process.env,
      CLOUDFLARE_INCLUDE_PROCESS_ENV: "false",
      ...(args.hyperdrive ? { CLOUDFLARE_HYPERDRIVE_LOCAL_CONNECTION_STRING_HYPERDRIVE: hyperdriveLocal.toString() } : {}),
    },
  },
);

function killWrangler(signal: NodeJS.Signals): void {
  try {
    process.kill(-wrangler.pid!, signal);
  } catch {
    // Already gone.
  }
}

let stopping = false;
async function stopAll(): Promise<void> {
  stopping = true;
  if (wrangler.exitCode === null && wrangler.signalCode === null) {
    const exited = new Promise((done) => wrangler.once("exit", done));
    killWrangler("SIGTERM");
    const timer = setTimeout(() => killWrangler("SIGKILL"), 5_000);
    await exited;
    clearTimeout(timer);
  }
  await stack.stop();
  removeBindings();
}

/** One part ended on its own: say which, stop the others, exit 1. */
function partExited(what: string): void {
  if (stopping) return;
  console.error(`error: ${what}; stopping the rest of the local stack`);
  stopAll().finally(() => process.exit(1));
}

onShutdown(stopAll);
// Whatever ends this process, workerd must not outlive it, nor the bindings file.
process.on("exit", () => {
  killWrangler("SIGKILL");
  removeBindings();
});
wrangler.on("exit", (code, signal) => partExited(`wrangler dev exited (${signal ? `killed by ${signal}` : `exit code ${code}`})`));
void stack.database.exited.then((how) => partExited(`PostgreSQL (the embedded server on port ${stack.database.port}) exited (${how})`));
void stack.endpoint.failed.then((error) => partExited(`the SQL endpoint stopped (${error.message})`));

console.log(
  [
    ...(demoUrls.length
      ? ["Tenants (demo users' password: demo-password):", ...demoUrls.map((url) => `  ${url}:${config.WORKER_PORT}/`)]
      : []),
    ...(stack.database.embedded ? [`Public site: http://localhost:${config.WORKER_PORT}/`] : []),
    `API docs: http://acme.localhost:${config.WORKER_PORT}/docs   Health: http://localhost:${config.WORKER_PORT}/health`,
    `Database client: ${args.hyperdrive ? "hyperdrive (wrangler dev --env hyperdrive; TCP straight to the database as the app role)" : "neon-http (through the local SQL endpoint)"}`,
    "Ctrl-C stops everything.",
  ].join("\n"),
);
