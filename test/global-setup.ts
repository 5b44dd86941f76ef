// Starts the services every test needs (vitest globalSetup): a throwaway embedded PostgreSQL (or
// DATABASE_URL's server) and the local SQL-over-HTTP endpoint, and injects their addresses.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TestProject } from "vitest/node";
import { externalDatabase, startEmbeddedPostgres } from "../scripts/local/postgres.ts";
import { startSqlEndpoint } from "../scripts/sql-endpoint/server.ts";

declare module "vitest" {
  export interface ProvidedContext {
    databaseUrl: string;
    sqlEndpointUrl: string;
  }
}

export default async function setup(project: TestProject) {
  const scratch = await mkdtemp(join(tmpdir(), "edge-tenants-test-"));
  const database = process.env.TEST_DATABASE_URL
    ? externalDatabase(process.env.TEST_DATABASE_URL)
    : await startEmbeddedPostgres({ dataDir: join(scratch, "pgdata"), ephemeral: true, database: "edge_tenants_test" });
  const endpoint = await startSqlEndpoint({ upstream: { host: database.host, port: database.port } });
  project.provide("databaseUrl", database.url);
  project.provide("sqlEndpointUrl", endpoint.url);
  return async () => {
    await endpoint.close();
    await database.stop();
    await rm(scratch, { recursive: true, force: true });
  };
}
