// `npm run db`: the local PostgreSQL and the SQL-over-HTTP endpoint, until Ctrl-C. For psql,
// drizzle-kit or your own code. `--delay-ms N` adds N ms to every endpoint request.
import { delayFromArgs, readLocalConfig } from "./config.ts";
import { describeStack, onShutdown, startLocalStack } from "./stack.ts";

const config = readLocalConfig();
const delayMs = delayFromArgs(process.argv.slice(2), config.LOCAL_SQL_DELAY_MS);
try {
  const stack = await startLocalStack(config, delayMs);
  onShutdown(() => stack.stop());
  console.log(describeStack(stack, delayMs));
  console.log("Ready. Press Ctrl-C to stop.");
} catch (error) {
  console.error(`error: ${(error as Error).message}`);
  process.exit(1);
}
