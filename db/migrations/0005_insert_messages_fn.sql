-- Inserts a batch of chat messages and numbers each room's messages gap-free, in the order given: one call,
-- whose statement plan PL/pgSQL keeps for the session (planning the same statement sent as SQL costs more than
-- running it). `ord` is the 0-based position in the input arrays; a message whose room does not exist is
-- left out of the result (the caller fails it).
CREATE FUNCTION insert_messages(p_rooms uuid[], p_authors uuid[], p_bodies text[])
RETURNS TABLE (ord integer, id bigint, seq integer, created_at timestamptz)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
BEGIN
  RETURN QUERY
  WITH input AS (
    SELECT t.room_id, t.author_id, t.body, (t.n - 1)::integer AS ord
    FROM unnest(p_rooms, p_authors, p_bodies) WITH ORDINALITY AS t (room_id, author_id, body, n)
  ),
  counts AS (SELECT input.room_id, count(*)::integer AS n FROM input GROUP BY input.room_id),
  bumped AS (
    UPDATE rooms SET last_seq = rooms.last_seq + counts.n FROM counts
    WHERE rooms.id = counts.room_id RETURNING rooms.id, rooms.last_seq
  ),
  numbered AS (
    SELECT input.*, bumped.last_seq - counts.n
      + row_number() OVER (PARTITION BY input.room_id ORDER BY input.ord) AS seq
    FROM input JOIN bumped ON bumped.id = input.room_id JOIN counts ON counts.room_id = input.room_id
  ),
  inserted AS (
    INSERT INTO messages AS m (room_id, seq, author_id, body)
    SELECT numbered.room_id, numbered.seq, numbered.author_id, numbered.body FROM numbered
    ORDER BY numbered.room_id, numbered.seq
    RETURNING m.id, m.room_id, m.seq, m.created_at
  )
  SELECT numbered.ord, inserted.id, inserted.seq, inserted.created_at
  FROM inserted JOIN numbered ON numbered.room_id = inserted.room_id AND numbered.seq = inserted.seq;
END
$$;
