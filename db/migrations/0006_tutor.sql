CREATE TABLE "answers" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"room_id" uuid NOT NULL,
	"asker_id" uuid NOT NULL,
	"question" text NOT NULL,
	"context" jsonb DEFAULT '{}'::jsonb NOT NULL,
	"status" text NOT NULL,
	"text" text DEFAULT '' NOT NULL,
	"review" boolean DEFAULT false NOT NULL,
	"deltas" integer DEFAULT 0 NOT NULL,
	"error" text,
	"kind" text NOT NULL,
	"language" text NOT NULL,
	"provider" text,
	"model" text,
	"variant" text,
	"sources" jsonb DEFAULT '[]'::jsonb NOT NULL,
	"prompt_tokens" integer,
	"completion_tokens" integer,
	"tokens_estimated" boolean,
	"first_token_ms" integer,
	"latency_ms" integer,
	"cached" boolean DEFAULT false NOT NULL,
	"cancelled_by" uuid,
	"reviewed_by" uuid,
	"reviewed_at" timestamp with time zone,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"started_at" timestamp with time zone,
	"finished_at" timestamp with time zone
);
--> statement-breakpoint
ALTER TABLE "rooms" ADD COLUMN "tutor_enabled" boolean DEFAULT true NOT NULL;--> statement-breakpoint
ALTER TABLE "rooms" ADD COLUMN "tutor_review" boolean DEFAULT false NOT NULL;--> statement-breakpoint
ALTER TABLE "rooms" ADD COLUMN "tutor_cache" boolean DEFAULT false NOT NULL;--> statement-breakpoint
ALTER TABLE "answers" ADD CONSTRAINT "answers_room_id_rooms_id_fk" FOREIGN KEY ("room_id") REFERENCES "public"."rooms"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "answers" ADD CONSTRAINT "answers_asker_id_users_id_fk" FOREIGN KEY ("asker_id") REFERENCES "public"."users"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "answers_room_created_idx" ON "answers" USING btree ("room_id","created_at");--> statement-breakpoint
CREATE INDEX "answers_asker_idx" ON "answers" USING btree ("asker_id");--> statement-breakpoint
CREATE INDEX "answers_active_idx" ON "answers" USING btree ("room_id") WHERE status in ('queued', 'streaming');