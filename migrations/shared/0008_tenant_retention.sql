CREATE TABLE "shared"."deleted_tenants" (
	"tenant_id" bigint PRIMARY KEY NOT NULL,
	"deleted_at" timestamp with time zone DEFAULT now() NOT NULL,
	"purge_after" timestamp with time zone NOT NULL,
	"status_before" "shared"."tenant_status" NOT NULL,
	CONSTRAINT "deleted_tenants_purge_after_deleted_at" CHECK ("shared"."deleted_tenants"."purge_after" >= "shared"."deleted_tenants"."deleted_at")
);
--> statement-breakpoint
ALTER TABLE "shared"."deleted_tenants" ADD CONSTRAINT "deleted_tenants_tenant_id_tenants_id_fk" FOREIGN KEY ("tenant_id") REFERENCES "shared"."tenants"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "deleted_tenants_purge_after_idx" ON "shared"."deleted_tenants" USING btree ("purge_after");