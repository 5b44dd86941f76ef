CREATE TYPE "tenant"."user_role" AS ENUM('member', 'admin');--> statement-breakpoint
ALTER TABLE "tenant"."users" ADD COLUMN "role" "tenant"."user_role" DEFAULT 'member' NOT NULL;