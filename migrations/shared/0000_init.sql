CREATE SCHEMA "shared";
--> statement-breakpoint
CREATE TYPE "shared"."tenant_status" AS ENUM('active', 'suspended');--> statement-breakpoint
CREATE TABLE "shared"."tenant_hosts" (
	"host" text PRIMARY KEY NOT NULL,
	"tenant_id" bigint NOT NULL,
	"is_primary" boolean DEFAULT false NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "tenant_hosts_host_lowercase" CHECK ("shared"."tenant_hosts"."host" = lower("shared"."tenant_hosts"."host"))
);
--> statement-breakpoint
CREATE TABLE "shared"."tenants" (
	"id" bigint PRIMARY KEY GENERATED ALWAYS AS IDENTITY (sequence name "shared"."tenants_id_seq" INCREMENT BY 1 MINVALUE 1 MAXVALUE 9223372036854775807 START WITH 1 CACHE 1),
	"slug" text NOT NULL,
	"name" text NOT NULL,
	"schema_name" text NOT NULL,
	"status" "shared"."tenant_status" DEFAULT 'active' NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "tenants_slug_unique" UNIQUE("slug"),
	CONSTRAINT "tenants_schema_name_unique" UNIQUE("schema_name"),
	CONSTRAINT "tenants_slug_format" CHECK ("shared"."tenants"."slug" ~ '^[a-z][a-z0-9_]{0,55}$'),
	CONSTRAINT "tenants_schema_name_matches_slug" CHECK ("shared"."tenants"."schema_name" = 'tenant_' || "shared"."tenants"."slug")
);
--> statement-breakpoint
ALTER TABLE "shared"."tenant_hosts" ADD CONSTRAINT "tenant_hosts_tenant_id_tenants_id_fk" FOREIGN KEY ("tenant_id") REFERENCES "shared"."tenants"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "tenant_hosts_tenant_id_idx" ON "shared"."tenant_hosts" USING btree ("tenant_id");--> statement-breakpoint
CREATE UNIQUE INDEX "tenant_hosts_one_primary_idx" ON "shared"."tenant_hosts" USING btree ("tenant_id") WHERE "shared"."tenant_hosts"."is_primary";