// Serves the Worker for a benchmark with wrangler's own dev server (the API `wrangler dev` runs on:
// same workerd, bindings and local simulators of KV, Rate Limiting and Analytics Engine), but with
// no DevTools inspector attached. `wrangler dev` always attaches one, and then every console.log
// is also sent over the DevTools protocol to wrangler's Node process, which costs more per log
// line than anything production does with it. Started by scripts/bench/worker.ts.
//   node scripts/bench/serve-worker.ts --port N --persist-to DIR [--var NAME:VALUE]... [--hyperdrive URL]
// --hyperdrive: a HYPERDRIVE binding connecting to URL (wrangler's local Hyperdrive), so the Worker
// uses its Hyperdrive client (docs/hyperdrive.md).
import { unstable_startWorker } from "wrangler";

const args = process.argv.slice(2);
function required(name: string): string {
  const value = args[args.indexOf(name) + 1];
  if (!args.includes(name) || !value) throw new Error(`serve-worker: ${name} is required`);
  return value;
}
const bindings: Record<string, { type: "plain_text"; value: string } | { type: "hyperdrive"; id: string; localConnectionString: string }> = {};
args.forEach((arg, i) => {
  if (arg !== "--var") return;
  const pair = args[i + 1] ?? "";
  const at = pair.indexOf(":");
  if (at < 1) throw new Error(`serve-worker: --var needs NAME:VALUE, got "${pair}"`);
  bindings[pair.slice(0, at)] = { type: "plain_text", value: pair.slice(at + 1) };
});
if (args.includes("--hyperdrive")) bindings.HYPERDRIVE = { type: "hyperdrive", id: "local-hyperdrive", localConnectionString: required("--hyperdrive") };

const worker = await unstable_startWorker({
  config: "wrangler.toml",
  bindings,
  dev: {
    inspector: false,
    server: { hostname: "127.0.0.1", port: Number(required("--port")) },
    persist: required("--persist-to"),
    logLevel: "error",
    watch: false,
  },
});
await worker.ready;
const stop = () => void worker.dispose().finally(() => process.exit(0));
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
