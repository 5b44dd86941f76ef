import { defineConfig } from "drizzle-kit";

// The shared track: the tenant catalog and any other shared tables (schema `shared`).
export default defineConfig({
  dialect: "postgresql",
  schema: "./src/db/schema/shared.ts",
  out: "./migrations/shared",
  schemaFilter: ["shared"],
});
