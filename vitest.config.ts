import { cloudflareTest } from "@cloudflare/vitest-plugin";
import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    globalSetup: ["./test/global-setup.ts"],
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
          cloudflareTest(({ inject }) => ({
            wrangler: { configPath: "./wrangler.toml" },
            miniflare: {
              bindings: {
                DATABASE_URL: inject("workerDatabaseUrl"),
                LOCAL_SQL_ENDPOINT: inject("sqlEndpointUrl"),
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
