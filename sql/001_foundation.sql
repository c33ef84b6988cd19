-- 001_foundation: tenants and API keys.
-- Keys are stored as a BLAKE2b-256 hash of the whole key; the key itself is
-- shown once by `onceledger key create` and never stored.

CREATE TABLE tenants (
    name        text PRIMARY KEY CHECK (name ~ '^[a-z0-9_-]{1,32}$'),
    created_at  timestamptz NOT NULL DEFAULT now(),
    -- NULL: the server's idempotency_ttl applies.
    idempotency_ttl_seconds integer CHECK (idempotency_ttl_seconds BETWEEN 1 AND 2592000)
);

CREATE TABLE api_keys (
    id          text PRIMARY KEY CHECK (id ~ '^[0-9a-f]{16}$'),
    tenant      text NOT NULL REFERENCES tenants (name),
    hash        bytea NOT NULL CHECK (length(hash) = 32),
    scopes      text[] NOT NULL CHECK (scopes <@ ARRAY['read', 'write', 'audit', 'dynamodb']::text[]
                                       AND cardinality(scopes) > 0),
    kind        text NOT NULL DEFAULT 'bearer' CHECK (kind IN ('bearer', 'sigv4')),
    -- sigv4 keys only: the secret sealed with the master key (issue #4).
    sealed_secret bytea,
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);
CREATE INDEX api_keys_tenant ON api_keys (tenant);
