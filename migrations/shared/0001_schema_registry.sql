CREATE TABLE "shared"."released_hosts" (
	"host" text PRIMARY KEY NOT NULL,
	"tenant_id" bigint NOT NULL,
	"released_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "released_hosts_host_lowercase" CHECK ("shared"."released_hosts"."host" = lower("shared"."released_hosts"."host"))
);
--> statement-breakpoint
CREATE TABLE "shared"."tenant_schemas" (
	"schema_name" text PRIMARY KEY NOT NULL,
	"tenant_id" bigint NOT NULL,
	"assigned_at" timestamp with time zone DEFAULT now() NOT NULL,
	"released_at" timestamp with time zone,
	CONSTRAINT "tenant_schemas_schema_name_format" CHECK ("schema_name" ~ '^tenant_[a-z0-9_]{1,56}$')
);
--> statement-breakpoint
ALTER TABLE "shared"."tenants" DROP CONSTRAINT "tenants_schema_name_matches_slug";--> statement-breakpoint
ALTER TABLE "shared"."tenants" ADD CONSTRAINT "tenants_schema_name_format" CHECK ("schema_name" ~ '^tenant_[a-z0-9_]{1,56}$');