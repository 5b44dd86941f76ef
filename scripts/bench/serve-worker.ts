// Serves the Worker for a benchmark with wrangler's own dev server (the API `wrangler dev` runs on:
// same workerd, bindings and local simulators of KV, Rate Limiting and Analytics Engine), but with
// no DevTools inspector attached. `wrangler dev` always attaches one, and then every console.log
// is also sent over the DevTools protocol to wrangler's Node process, which costs more per log
// line than anything production does with it. Started by scripts/bench/worker.ts.
//   node scripts/bench/serve-worker.ts --port N --persist-to DIR --env-file FILE [--hyperdrive]
// --env-file: the Worker's variables (scripts/local/worker-env.ts writes it), never on the command
// line. --hyperdrive: a HYPERDRIVE binding (wrangler's local Hyperdrive) connecting to the URL in
// CLOUDFLARE_HYPERDRIVE_LOCAL_CONNECTION_STRING_HYPERDRIVE (wrangler's own variable for it), so the
// Worker uses its Hyperdrive client (docs/hyperdrive.md).
import { unstable_startWorker } from "wrangler";
import { resolve } from "node:path";

const args = process.argv.slice(2);
function required(name: string): string {
  const value = args[args.indexOf(name) + 1];
  if (!args.includes(name) || !value) throw new Error(`serve-worker: ${name} is required`);
  return value;
}
const bindings: Record<string, { type: "hyperdrive"; id: string; localConnectionString: string }> = {};
if (args.includes("--hyperdrive")) {
  const localConnectionString = process.env.CLOUDFLARE_HYPERDRIVE_LOCAL_CONNECTION_STRING_HYPERDRIVE;
  if (!localConnectionString) throw new Error("serve-worker: --hyperdrive needs CLOUDFLARE_HYPERDRIVE_LOCAL_CONNECTION_STRING_HYPERDRIVE");
  bindings.HYPERDRIVE = { type: "hyperdrive", id: "local-hyperdrive", localConnectionString };
}

const worker = await unstable_startWorker({
  config: "wrangler.toml",
  // The Worker's variables from this file only: never the checkout's .env / .dev.vars, whose
  // DATABASE_URL is the owner's.
  envFiles: [resolve(required("--env-file"))],
  bindings,
  dev: {
    inspector: false,
    server: { hostname: "127.0.0.1", port: Number(required("--port")) },
    persist: required("--persist-to"),
    logLevel: "error",
    // The Worker's own console output, as wrangler would show it at this log level (errors only),
    // but without wrangler's default handler, which source-maps every console.log and
    // console.error line before its level is checked: about 1 ms of this process's CPU per
    // request's log line, a cost production does not have. (--inspector, plain wrangler dev,
    // keeps wrangler's handler.)
    structuredLogsHandler: ({ level, message }: { level: string; message: string }) => {
      if (level === "error") process.stderr.write(`${message}\n`);
    },
    watch: false,
  },
});
await worker.ready;
const stop = () => void worker.dispose().finally(() => process.exit(0));
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
