CREATE TABLE "actions" (
	"id" text PRIMARY KEY NOT NULL,
	"plan_id" text NOT NULL,
	"kind" text NOT NULL,
	"vendor" text NOT NULL,
	"offering_id" text NOT NULL,
	"count" integer NOT NULL,
	"instance_ids" jsonb NOT NULL,
	"status" text NOT NULL,
	"error" text,
	"created_at" bigint NOT NULL,
	"updated_at" bigint NOT NULL
);
--> statement-breakpoint
CREATE TABLE "api_tokens" (
	"id" text PRIMARY KEY NOT NULL,
	"tenant_id" text NOT NULL,
	"token_hash" text NOT NULL,
	"role" text NOT NULL,
	"created_at" bigint NOT NULL,
	"revoked_at" bigint,
	CONSTRAINT "api_tokens_token_hash_unique" UNIQUE("token_hash")
);
--> statement-breakpoint
CREATE TABLE "instances" (
	"id" text PRIMARY KEY NOT NULL,
	"vendor" text NOT NULL,
	"offering_id" text NOT NULL,
	"region" text NOT NULL,
	"zone" text NOT NULL,
	"instance_type" text NOT NULL,
	"capacity_type" text NOT NULL,
	"gpu" text NOT NULL,
	"gpus_per_instance" integer NOT NULL,
	"state" text NOT NULL,
	"micros_per_hour" bigint NOT NULL,
	"idempotency_key" text NOT NULL,
	"launched_at" bigint NOT NULL,
	"running_at" bigint,
	"terminated_at" bigint,
	"termination_reason" text,
	"interrupt_at" bigint,
	"draining" boolean DEFAULT false NOT NULL
);
--> statement-breakpoint
CREATE TABLE "lease_allocations" (
	"lease_id" text NOT NULL,
	"instance_id" text NOT NULL,
	"gpu_indices" jsonb NOT NULL,
	CONSTRAINT "lease_allocations_lease_id_instance_id_pk" PRIMARY KEY("lease_id","instance_id")
);
--> statement-breakpoint
CREATE TABLE "leases" (
	"id" text PRIMARY KEY NOT NULL,
	"tenant_id" text NOT NULL,
	"idempotency_key" text,
	"request" jsonb NOT NULL,
	"gpu" text NOT NULL,
	"count" integer NOT NULL,
	"status" text NOT NULL,
	"reason" text,
	"micros_per_hour" bigint,
	"created_at" bigint NOT NULL,
	"ready_at" bigint,
	"ended_at" bigint,
	"expires_at" bigint
);
--> statement-breakpoint
CREATE TABLE "plans" (
	"id" text PRIMARY KEY NOT NULL,
	"created_at" bigint NOT NULL,
	"policy_version" integer NOT NULL,
	"status" text NOT NULL,
	"backend" text NOT NULL,
	"objective" jsonb NOT NULL,
	"micros_per_hour" bigint NOT NULL,
	"solve_ms" integer NOT NULL,
	"inputs" jsonb NOT NULL,
	"result" jsonb NOT NULL,
	"explanation" jsonb NOT NULL
);
--> statement-breakpoint
CREATE TABLE "policies" (
	"version" integer PRIMARY KEY NOT NULL,
	"policy" jsonb NOT NULL,
	"created_at" bigint NOT NULL,
	"created_by" text NOT NULL,
	"diff" jsonb NOT NULL
);
--> statement-breakpoint
CREATE TABLE "settings" (
	"key" text PRIMARY KEY NOT NULL,
	"value" text NOT NULL
);
--> statement-breakpoint
CREATE TABLE "tenants" (
	"id" text PRIMARY KEY NOT NULL,
	"name" text NOT NULL,
	"gpu_quota" integer,
	"created_at" bigint NOT NULL,
	CONSTRAINT "tenants_name_unique" UNIQUE("name")
);
--> statement-breakpoint
ALTER TABLE "api_tokens" ADD CONSTRAINT "api_tokens_tenant_id_tenants_id_fk" FOREIGN KEY ("tenant_id") REFERENCES "public"."tenants"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "lease_allocations" ADD CONSTRAINT "lease_allocations_lease_id_leases_id_fk" FOREIGN KEY ("lease_id") REFERENCES "public"."leases"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "leases" ADD CONSTRAINT "leases_tenant_id_tenants_id_fk" FOREIGN KEY ("tenant_id") REFERENCES "public"."tenants"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "actions_open" ON "actions" USING btree ("status");--> statement-breakpoint
CREATE INDEX "instances_live" ON "instances" USING btree ("state");--> statement-breakpoint
CREATE UNIQUE INDEX "leases_idempotency" ON "leases" USING btree ("tenant_id","idempotency_key") WHERE "leases"."idempotency_key" is not null;--> statement-breakpoint
CREATE INDEX "leases_open" ON "leases" USING btree ("status");