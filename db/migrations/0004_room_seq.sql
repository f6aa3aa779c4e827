-- Per-room message sequence: 1, 2, 3, ... without gaps. Existing messages are numbered in id order.
DROP INDEX "messages_room_id_idx";--> statement-breakpoint
ALTER TABLE "messages" ADD COLUMN "seq" integer;--> statement-breakpoint
UPDATE "messages" AS m SET "seq" = n.rn
  FROM (SELECT "id", row_number() OVER (PARTITION BY "room_id" ORDER BY "id") AS rn FROM "messages") AS n
  WHERE m."id" = n."id";--> statement-breakpoint
ALTER TABLE "messages" ALTER COLUMN "seq" SET NOT NULL;--> statement-breakpoint
ALTER TABLE "rooms" ADD COLUMN "last_seq" integer DEFAULT 0 NOT NULL;--> statement-breakpoint
UPDATE "rooms" SET "last_seq" = COALESCE((SELECT max("seq") FROM "messages" WHERE "messages"."room_id" = "rooms"."id"), 0);--> statement-breakpoint
CREATE UNIQUE INDEX "messages_room_seq_idx" ON "messages" USING btree ("room_id","seq");
