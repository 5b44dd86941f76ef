import { defineConfig } from "drizzle-kit";

// The tenant track: tenant tables against the placeholder schema `tenant`.
export default defineConfig({
  dialect: "postgresql",
  schema: "./scripts/migrations/tenant-placeholder.ts",
  out: "./migrations/tenant",
  schemaFilter: ["tenant"],
});
