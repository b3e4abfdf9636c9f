-- The stored size of a payload, bounded in the database itself: the app refuses a payload whose numbers
-- would be written out past this (1e308 is stored as 309 digits), and this refuses what the app's estimate
-- misses or a client that writes to the table directly. NOT VALID: rows stored before the bound are kept.
ALTER TABLE items
    ADD CONSTRAINT items_payload_stored_size CHECK (octet_length(payload::text) <= 65536) NOT VALID;
