CREATE TABLE "meter_checkpoints" (
	"meter_id" text PRIMARY KEY NOT NULL,
	"checkpoint_ms" bigint NOT NULL
);
--> statement-breakpoint
ALTER TABLE "usage_intervals" ADD COLUMN "meter_id" text DEFAULT '' NOT NULL;