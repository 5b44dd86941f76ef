ALTER TABLE "shared"."tenant_hosts" ADD COLUMN "custom_hostname_id" text;--> statement-breakpoint
ALTER TABLE "shared"."tenant_hosts" ADD COLUMN "custom_zone_id" text;--> statement-breakpoint
ALTER TABLE "shared"."tenant_hosts" ADD COLUMN "custom_status" text;--> statement-breakpoint
ALTER TABLE "shared"."tenant_hosts" ADD COLUMN "custom_ssl_status" text;--> statement-breakpoint
ALTER TABLE "shared"."tenant_hosts" ADD COLUMN "custom_verification" jsonb;--> statement-breakpoint
ALTER TABLE "shared"."tenant_hosts" ADD COLUMN "custom_checked_at" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "shared"."tenant_hosts" ADD CONSTRAINT "tenant_hosts_custom_hostname_id_unique" UNIQUE("custom_hostname_id");--> statement-breakpoint
ALTER TABLE "shared"."tenant_hosts" ADD CONSTRAINT "tenant_hosts_custom_complete" CHECK (("shared"."tenant_hosts"."custom_hostname_id" IS NULL) = ("shared"."tenant_hosts"."custom_zone_id" IS NULL) AND ("shared"."tenant_hosts"."custom_hostname_id" IS NULL) = ("shared"."tenant_hosts"."custom_status" IS NULL) AND ("shared"."tenant_hosts"."custom_hostname_id" IS NULL) = ("shared"."tenant_hosts"."custom_checked_at" IS NULL));