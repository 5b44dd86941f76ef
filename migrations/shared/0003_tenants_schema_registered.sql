ALTER TABLE "shared"."tenant_schemas" ADD CONSTRAINT "tenant_schemas_schema_name_tenant_id_unique" UNIQUE("schema_name","tenant_id");--> statement-breakpoint
ALTER TABLE "shared"."tenants" ADD CONSTRAINT "tenants_schema_name_registered_fk" FOREIGN KEY ("schema_name","id") REFERENCES "shared"."tenant_schemas"("schema_name","tenant_id") ON DELETE no action ON UPDATE no action;
