CREATE TABLE "shared"."fleet_size" (
	"id" boolean PRIMARY KEY DEFAULT true NOT NULL,
	"schemas" bigint NOT NULL,
	CONSTRAINT "fleet_size_one_row" CHECK ("shared"."fleet_size"."id")
);
--> statement-breakpoint
CREATE TABLE "shared"."ledger_counts" (
	"migration" text NOT NULL,
	"checksum" text NOT NULL,
	"schemas" bigint NOT NULL,
	CONSTRAINT "ledger_counts_migration_checksum_pk" PRIMARY KEY("migration","checksum")
);
--> statement-breakpoint
CREATE TABLE "shared"."tenant_pool" (
	"schema_name" text PRIMARY KEY NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"claimed_at" timestamp with time zone,
	"claim_token" text,
	CONSTRAINT "tenant_pool_schema_name_format" CHECK ("schema_name" ~ '^tenant_[a-z0-9_]{1,56}$'),
	CONSTRAINT "tenant_pool_claim_complete" CHECK (("shared"."tenant_pool"."claimed_at" IS NULL) = ("shared"."tenant_pool"."claim_token" IS NULL))
);
--> statement-breakpoint
ALTER TABLE "shared"."tenant_schemas" ALTER COLUMN "tenant_id" DROP NOT NULL;--> statement-breakpoint
CREATE INDEX "tenant_pool_unclaimed_idx" ON "shared"."tenant_pool" USING btree ("created_at") WHERE "shared"."tenant_pool"."claimed_at" IS NULL;
--> statement-breakpoint
-- Hand-written below (functions, triggers, seed rows): drizzle-kit does not generate them.
-- A registry row whose tenant is gone (removed by hand, not with `tenants delete`) counts as released.
UPDATE "shared"."tenant_schemas" SET "released_at" = now()
WHERE "released_at" IS NULL
  AND NOT EXISTS (SELECT 1 FROM "shared"."tenants" t WHERE t."schema_name" = "shared"."tenant_schemas"."schema_name");
--> statement-breakpoint
INSERT INTO "shared"."fleet_size" ("id", "schemas")
SELECT true, count(*) FROM "shared"."tenant_schemas" WHERE "released_at" IS NULL;
--> statement-breakpoint
INSERT INTO "shared"."ledger_counts" ("migration", "checksum", "schemas")
SELECT l."migration", l."checksum", count(*)
FROM "public"."schema_migrations" l
JOIN "shared"."tenant_schemas" r ON r."schema_name" = l."schema_name" AND r."released_at" IS NULL
WHERE l."track" = 'tenant'
GROUP BY l."migration", l."checksum";
--> statement-breakpoint
-- Ledger rows written or removed: per migration and checksum, +/- the rows of live schemas.
CREATE FUNCTION "shared"."ledger_counts_on_ledger"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP IN ('DELETE', 'UPDATE') THEN
    INSERT INTO "shared"."ledger_counts" AS c ("migration", "checksum", "schemas")
    SELECT o."migration", o."checksum", -count(*)
    FROM old_rows o JOIN "shared"."tenant_schemas" r ON r."schema_name" = o."schema_name" AND r."released_at" IS NULL
    WHERE o."track" = 'tenant' GROUP BY o."migration", o."checksum"
    ON CONFLICT ("migration", "checksum") DO UPDATE SET "schemas" = c."schemas" + excluded."schemas";
  END IF;
  IF TG_OP IN ('INSERT', 'UPDATE') THEN
    INSERT INTO "shared"."ledger_counts" AS c ("migration", "checksum", "schemas")
    SELECT n."migration", n."checksum", count(*)
    FROM new_rows n JOIN "shared"."tenant_schemas" r ON r."schema_name" = n."schema_name" AND r."released_at" IS NULL
    WHERE n."track" = 'tenant' GROUP BY n."migration", n."checksum"
    ON CONFLICT ("migration", "checksum") DO UPDATE SET "schemas" = c."schemas" + excluded."schemas";
  END IF;
  DELETE FROM "shared"."ledger_counts" WHERE "schemas" <= 0;
  RETURN NULL;
END
$$;
--> statement-breakpoint
CREATE TRIGGER "ledger_counts_insert" AFTER INSERT ON "public"."schema_migrations"
  REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION "shared"."ledger_counts_on_ledger"();
--> statement-breakpoint
CREATE TRIGGER "ledger_counts_update" AFTER UPDATE ON "public"."schema_migrations"
  REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION "shared"."ledger_counts_on_ledger"();
--> statement-breakpoint
CREATE TRIGGER "ledger_counts_delete" AFTER DELETE ON "public"."schema_migrations"
  REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION "shared"."ledger_counts_on_ledger"();
--> statement-breakpoint
-- A schema joins the fleet (registry row, not released) or leaves it (released, or its row removed):
-- its ledger rows count, or stop counting, and the fleet size follows.
CREATE FUNCTION "shared"."ledger_counts_on_registry"() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  was_live boolean := TG_OP <> 'INSERT' AND OLD."released_at" IS NULL;
  is_live boolean := TG_OP <> 'DELETE' AND NEW."released_at" IS NULL;
  delta int;
  name text;
BEGIN
  IF was_live = is_live THEN RETURN NULL; END IF;
  delta := CASE WHEN is_live THEN 1 ELSE -1 END;
  name := CASE WHEN TG_OP = 'DELETE' THEN OLD."schema_name" ELSE NEW."schema_name" END;
  UPDATE "shared"."fleet_size" SET "schemas" = "schemas" + delta;
  INSERT INTO "shared"."ledger_counts" AS c ("migration", "checksum", "schemas")
  SELECT l."migration", l."checksum", delta * count(*)
  -- A tenant schema's rows are all of the tenant track; by schema name only, so the primary key's index serves it.
  FROM "public"."schema_migrations" l WHERE l."schema_name" = name
  GROUP BY l."migration", l."checksum"
  ON CONFLICT ("migration", "checksum") DO UPDATE SET "schemas" = c."schemas" + excluded."schemas";
  DELETE FROM "shared"."ledger_counts" WHERE "schemas" <= 0;
  RETURN NULL;
END
$$;
--> statement-breakpoint
CREATE TRIGGER "ledger_counts_registry_insert_delete" AFTER INSERT OR DELETE ON "shared"."tenant_schemas"
  FOR EACH ROW EXECUTE FUNCTION "shared"."ledger_counts_on_registry"();
--> statement-breakpoint
CREATE TRIGGER "ledger_counts_registry_release" AFTER UPDATE OF "released_at" ON "shared"."tenant_schemas"
  FOR EACH ROW WHEN (OLD."released_at" IS DISTINCT FROM NEW."released_at") EXECUTE FUNCTION "shared"."ledger_counts_on_registry"();
--> statement-breakpoint
-- A tenant row removed (by `tenants delete`, or by hand): its schema name is released.
CREATE FUNCTION "shared"."release_schema_of_deleted_tenant"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  UPDATE "shared"."tenant_schemas" SET "released_at" = now()
  WHERE "schema_name" = OLD."schema_name" AND "released_at" IS NULL;
  RETURN NULL;
END
$$;
--> statement-breakpoint
CREATE TRIGGER "release_schema_of_deleted_tenant" AFTER DELETE ON "shared"."tenants"
  FOR EACH ROW EXECUTE FUNCTION "shared"."release_schema_of_deleted_tenant"();
--> statement-breakpoint
-- A schema name is assigned to a tenant once: a registry row's tenant may be set only while it has
-- none (an unclaimed pool slot) and the name is not released; never changed or cleared after.
CREATE FUNCTION "shared"."tenant_schemas_assign_once"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF OLD."tenant_id" IS NOT NULL OR OLD."released_at" IS NOT NULL OR NEW."tenant_id" IS NULL THEN
    RAISE EXCEPTION 'schema name % is already assigned (or released): it is never assigned again', OLD."schema_name"
      USING ERRCODE = '23514';
  END IF;
  RETURN NEW;
END
$$;
--> statement-breakpoint
CREATE TRIGGER "tenant_schemas_assign_once" BEFORE UPDATE OF "tenant_id" ON "shared"."tenant_schemas"
  FOR EACH ROW WHEN (OLD."tenant_id" IS DISTINCT FROM NEW."tenant_id") EXECUTE FUNCTION "shared"."tenant_schemas_assign_once"();
