CREATE TABLE "agents" (
	"id" text PRIMARY KEY NOT NULL,
	"credential_hash" text NOT NULL,
	"instance_id" text NOT NULL,
	"hostname" text NOT NULL,
	"labels" jsonb NOT NULL,
	"joined_with" text NOT NULL,
	"created_at" bigint NOT NULL,
	"revoked_at" bigint,
	CONSTRAINT "agents_credential_hash_unique" UNIQUE("credential_hash")
);
--> statement-breakpoint
CREATE TABLE "join_tokens" (
	"id" text PRIMARY KEY NOT NULL,
	"token_hash" text NOT NULL,
	"bound_to" text,
	"expires_at" bigint,
	"created_at" bigint NOT NULL,
	"created_by" text NOT NULL,
	"revoked_at" bigint,
	CONSTRAINT "join_tokens_token_hash_unique" UNIQUE("token_hash")
);
--> statement-breakpoint
CREATE INDEX "agents_instance" ON "agents" USING btree ("instance_id");