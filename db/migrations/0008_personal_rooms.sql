ALTER TABLE "rooms" ADD COLUMN "personal" boolean DEFAULT false NOT NULL;--> statement-breakpoint
CREATE UNIQUE INDEX "rooms_personal_owner_idx" ON "rooms" USING btree ("owner_id") WHERE personal;