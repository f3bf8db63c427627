CREATE TABLE "calls" (
	"id" text PRIMARY KEY NOT NULL,
	"tenant_id" text NOT NULL,
	"app_tenant_id" text NOT NULL,
	"app" text NOT NULL,
	"function_name" text NOT NULL,
	"args" text NOT NULL,
	"status" text NOT NULL,
	"attempts" integer NOT NULL,
	"created_at" bigint NOT NULL,
	"started_at" bigint,
	"finished_at" bigint,
	"error" jsonb,
	"value" text
);
--> statement-breakpoint
CREATE INDEX "calls_finished_at" ON "calls" USING btree ("finished_at");