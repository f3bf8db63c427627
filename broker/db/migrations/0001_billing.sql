CREATE TABLE "invoices" (
	"tenant_id" text NOT NULL,
	"month" text NOT NULL,
	"price_book_version" integer NOT NULL,
	"lines" jsonb NOT NULL,
	"total_micros" bigint NOT NULL,
	"closed_at" bigint NOT NULL,
	CONSTRAINT "invoices_tenant_id_month_pk" PRIMARY KEY("tenant_id","month")
);
--> statement-breakpoint
CREATE TABLE "price_books" (
	"version" integer PRIMARY KEY NOT NULL,
	"book" jsonb NOT NULL,
	"created_at" bigint NOT NULL,
	"created_by" text NOT NULL,
	"diff" jsonb NOT NULL
);
--> statement-breakpoint
CREATE TABLE "usage_intervals" (
	"id" text PRIMARY KEY NOT NULL,
	"tenant_id" text NOT NULL,
	"kind" text NOT NULL,
	"subject" text NOT NULL,
	"gpu" text NOT NULL,
	"gpus" integer NOT NULL,
	"cores" integer DEFAULT 0 NOT NULL,
	"memory_mib" integer DEFAULT 0 NOT NULL,
	"vendor" text NOT NULL,
	"region" text NOT NULL,
	"capacity_type" text NOT NULL,
	"start_ms" bigint NOT NULL,
	"checkpoint_ms" bigint NOT NULL,
	"end_ms" bigint,
	"ended_by" text
);
--> statement-breakpoint
ALTER TABLE "tenants" ADD COLUMN "spend_limit_hour_micros" bigint;--> statement-breakpoint
ALTER TABLE "tenants" ADD COLUMN "spend_limit_month_micros" bigint;--> statement-breakpoint
ALTER TABLE "tenants" ADD COLUMN "on_spend_limit" text DEFAULT 'continue' NOT NULL;--> statement-breakpoint
ALTER TABLE "invoices" ADD CONSTRAINT "invoices_tenant_id_tenants_id_fk" FOREIGN KEY ("tenant_id") REFERENCES "public"."tenants"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "usage_tenant_start" ON "usage_intervals" USING btree ("tenant_id","start_ms");--> statement-breakpoint
CREATE INDEX "usage_open" ON "usage_intervals" USING btree ("id") WHERE "usage_intervals"."end_ms" is null;