// `npm run dev`: the local PostgreSQL, the SQL-over-HTTP endpoint and `wrangler dev` together.
// Ctrl-C stops all three; so does any one of them failing. `--delay-ms N` adds N ms to every
// database request, to feel production's edge-to-region round trips.
import { spawn } from "node:child_process";
import { resolve } from "node:path";
import { delayFromArgs, readLocalConfig } from "./local/config.ts";
import { prepareDemoDatabase } from "./local/demo.ts";
import { describeStack, onShutdown, startLocalStack } from "./local/stack.ts";

const config = readLocalConfig();
const delayMs = delayFromArgs(process.argv.slice(2), config.LOCAL_SQL_DELAY_MS);

let stack;
try {
  stack = await startLocalStack(config, delayMs);
} catch (error) {
  console.error(`error: ${(error as Error).message}`);
  process.exit(1);
}
console.log(describeStack(stack, delayMs));
let demoUrls: string[];
try {
  demoUrls = await prepareDemoDatabase(stack.database.url);
} catch (error) {
  console.error(`error: ${(error as Error).message}`);
  await stack.stop();
  process.exit(1);
}

const wranglerBin = resolve("node_modules/.bin/wrangler");
// The worker's own process group, so stopping it also stops workerd under it.
const wrangler = spawn(
  wranglerBin,
  [
    "dev",
    "--port",
    String(config.WORKER_PORT),
    "--var",
    `DATABASE_URL:${stack.database.url}`,
    "--var",
    `LOCAL_SQL_ENDPOINT:${stack.endpoint.url}`,
    "--show-interactive-dev-session=false",
  ],
  { stdio: ["ignore", "inherit", "inherit"], detached: true },
);

let stopping = false;
async function stopAll(): Promise<void> {
  stopping = true;
  if (wrangler.exitCode === null && wrangler.signalCode === null) {
    const exited = new Promise((done) => wrangler.once("exit", done));
    try {
      process.kill(-wrangler.pid!, "SIGTERM");
    } catch {
      // Already gone.
    }
    const timer = setTimeout(() => {
      try {
        process.kill(-wrangler.pid!, "SIGKILL");
      } catch {}
    }, 5_000);
    await exited;
    clearTimeout(timer);
  }
  await stack!.stop();
}

onShutdown(stopAll);
wrangler.on("exit", (code) => {
  if (stopping) return;
  console.error(`wrangler dev exited (${code ?? "signal"}); stopping the local database and endpoint`);
  stack!.stop().finally(() => process.exit(code || 1));
});
console.log(
  [
    "Tenants:",
    ...demoUrls.map((url) => `  ${url}:${config.WORKER_PORT}/users`),
    `API docs: http://acme.localhost:${config.WORKER_PORT}/docs   Health: http://localhost:${config.WORKER_PORT}/health`,
    "Ctrl-C stops everything.",
  ].join("\n"),
);
