-- 009_long_keys: DynamoDB's longest partition keys (2,048 bytes) in a btree
-- entry. A btree entry holds at most 2,704 bytes, and (table_id, pk, sk) with
-- a 2,048-byte binary partition key (4,096 hex digits) and a sort key does
-- not fit. Only equality is ever asked of a partition key, so an encoded
-- partition key longer than 256 bytes is stored as the hex SHA-256 of it
-- padded with '~' to 300 bytes: never equal to a short key (the lengths
-- differ), and sort keys keep their full, ordered encoding.
-- it_key_encode_partition() in src/items/keyenc.c is the twin of this
-- function; a db test checks that both agree.

CREATE FUNCTION ol_key_cap(k text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN octet_length(k) <= 256 THEN k
                ELSE rpad(encode(sha256(convert_to(k, 'UTF8')), 'hex'), 300, '~') END
$$;

-- Keys stored before this migration in the long form get the new one.
UPDATE items SET pk = ol_key_cap(pk) WHERE octet_length(pk) > 256;
UPDATE items SET x1pk = ol_key_cap(x1pk) WHERE octet_length(x1pk) > 256;
UPDATE items SET x2pk = ol_key_cap(x2pk) WHERE octet_length(x2pk) > 256;
UPDATE items SET x3pk = ol_key_cap(x3pk) WHERE octet_length(x3pk) > 256;
UPDATE items SET x4pk = ol_key_cap(x4pk) WHERE octet_length(x4pk) > 256;
UPDATE items SET x5pk = ol_key_cap(x5pk) WHERE octet_length(x5pk) > 256;
UPDATE items SET x6pk = ol_key_cap(x6pk) WHERE octet_length(x6pk) > 256;
UPDATE items SET x7pk = ol_key_cap(x7pk) WHERE octet_length(x7pk) > 256;
UPDATE items SET x8pk = ol_key_cap(x8pk) WHERE octet_length(x8pk) > 256;
