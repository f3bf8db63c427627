CREATE TABLE "apps" (
	"tenant_id" text NOT NULL,
	"name" text NOT NULL,
	"bundle_id" text NOT NULL,
	"functions" jsonb NOT NULL,
	"ephemeral" boolean NOT NULL,
	"created_at" bigint NOT NULL,
	"updated_at" bigint NOT NULL,
	CONSTRAINT "apps_tenant_id_name_pk" PRIMARY KEY("tenant_id","name")
);
--> statement-breakpoint
ALTER TABLE "apps" ADD CONSTRAINT "apps_tenant_id_tenants_id_fk" FOREIGN KEY ("tenant_id") REFERENCES "public"."tenants"("id") ON DELETE no action ON UPDATE no action;