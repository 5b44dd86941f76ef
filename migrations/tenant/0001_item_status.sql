CREATE TYPE "tenant"."item_status" AS ENUM('draft', 'published', 'archived');--> statement-breakpoint
ALTER TABLE "tenant"."items" ADD COLUMN "status" "tenant"."item_status" DEFAULT 'draft' NOT NULL;