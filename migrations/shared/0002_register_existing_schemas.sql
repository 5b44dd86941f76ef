-- Tenants created before the schema registry existed keep their schema (named tenant_<slug>):
-- record each one as assigned, so that name is never assigned again.
INSERT INTO "shared"."tenant_schemas" ("schema_name", "tenant_id", "assigned_at")
SELECT "schema_name", "id", "created_at" FROM "shared"."tenants"
ON CONFLICT ("schema_name") DO NOTHING;
