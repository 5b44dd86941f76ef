// `npm run db`: the local PostgreSQL and the SQL-over-HTTP endpoint, until Ctrl-C. For psql,
// drizzle-kit or your own code. `--delay-ms N` adds N ms to every endpoint request; `--show-url`
// prints DATABASE_URL with its password; `--unsafe-listen` allows a non-loopback LOCAL_SQL_HOST.
import { readLocalConfig, stackArgs } from "./config.ts";
import { describeStack, onShutdown, startLocalStack } from "./stack.ts";

const config = readLocalConfig();
const args = stackArgs("npm run db", process.argv.slice(2), config);
try {
  const stack = await startLocalStack(config, args);
  onShutdown(() => stack.stop());
  console.log(describeStack(stack, args));
  console.log("Ready. Press Ctrl-C to stop.");
  const died = await Promise.race([
    stack.database.exited.then((how) => `PostgreSQL exited (${how})`),
    stack.endpoint.failed.then((error) => `the SQL endpoint stopped (${error.message})`),
  ]);
  console.error(`error: ${died}; stopping`);
  await stack.stop();
  process.exit(1);
} catch (error) {
  console.error(`error: ${(error as Error).message}`);
  process.exit(1);
}
