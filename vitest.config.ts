import { cloudflareTest } from "@cloudflare/vitest-plugin";
import { fileURLToPath } from "node:url";
import { defineConfig } from "vitest/config";

/** The admin URL's credentials and server, on the Worker's database. */
function ownerUrl(adminUrl: string, workerUrl: string): string {
  const url = new URL(adminUrl);
  url.pathname = new URL(workerUrl).pathname;
  return url.toString();
}

/**
 * The Worker's database client in the Worker tests: `neon-http` (default, through the local SQL
 * endpoint) or, with TEST_DB_CLIENT=hyperdrive, a Hyperdrive binding (miniflare's local Hyperdrive,
 * straight to the app role's database through a transaction-mode PgBouncer: test/global-setup.ts).
 */
const TEST_DB_CLIENT = process.env.TEST_DB_CLIENT ?? "neon-http";
if (TEST_DB_CLIENT !== "neon-http" && TEST_DB_CLIENT !== "hyperdrive") {
  throw new Error(`TEST_DB_CLIENT is neon-http (default) or hyperdrive, not "${TEST_DB_CLIENT}"`);
}

export default defineConfig({
  test: {
    globalSetup: ["./test/global-setup.ts"],
    // The Worker logs one JSON line per request; keep test output to the rest.
    onConsoleLog: (log) => !log.includes('"event":"request"'),
    projects: [
      {
        test: {
          name: "node",
          include: ["test/sql-endpoint/**/*.test.ts", "test/lifecycle/**/*.test.ts", "test/node-openapi/**/*.test.ts", "test/e2e/**/*.test.ts"],
          environment: "node",
          testTimeout: 30_000,
        },
      },
      {
        plugins: [
          {
            // pg takes its socket from pg-cloudflare, whose Worker build sits behind the `workerd`
            // export condition: wrangler's bundler picks it, the vitest pool's require() does not.
            name: "pg-cloudflare-for-workerd",
            enforce: "pre",
            resolveId(id: string) {
              if (id === "pg-cloudflare") return fileURLToPath(new URL("./node_modules/pg-cloudflare/dist/index.js", import.meta.url));
            },
          },
          cloudflareTest(({ inject }) => ({
            wrangler: { configPath: "./wrangler.toml" },
            miniflare: {
              // Tests only: a real Rate Limiting binding with a small limit, to reach a tenant's limit.
              ratelimits: { TEST_TENANT_LIMITER_5: { namespace_id: "9001", simple: { limit: 5, period: 60 } } },
              ...(TEST_DB_CLIENT === "hyperdrive" ? { hyperdrives: { HYPERDRIVE: inject("hyperdriveUrl") } } : {}),
              bindings: {
                // The Worker connects as the app role; the owner's URL is for tests that act as the CLIs.
                DATABASE_URL: inject("workerDatabaseUrl"),
                // Tests only: the server's superuser on the Worker's database, to change schemas
                // under the Worker's feet (drop a column, a schema) whatever role the Worker uses.
                TEST_OWNER_DATABASE_URL: ownerUrl(inject("databaseUrl"), inject("workerDatabaseUrl")),
                TEST_STATEMENT_LOG_URL: inject("statementLogUrl"),
                LOCAL_SQL_ENDPOINT: inject("sqlEndpointUrl"),
                // A test-only signing key (not a secret anywhere): sessions, API tokens, CSRF tokens.
                SESSION_SECRET: "test-only-session-secret-0123456789abcdef",
                // Short isolate TTLs, so tests can watch entries expire.
                TENANT_MEMORY_TTL_SECONDS: "2",
                TENANT_NEGATIVE_TTL_SECONDS: "1",
              },
            },
          })),
        ],
        test: {
          name: "worker",
          include: ["test/worker/**/*.test.ts"],
          testTimeout: 30_000,
        },
      },
    ],
  },
});
