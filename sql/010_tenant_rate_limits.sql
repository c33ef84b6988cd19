-- 010_tenant_rate_limits: a tenant's own per-key request rate limit
-- (docs/operations.md "Rate limits"), set with
-- `onceledger tenant update NAME --rate-limit-rps N --rate-limit-burst N`.
-- NULL: the server's rate_limit_rps / rate_limit_burst apply; a rate of 0
-- exempts the tenant's keys from any limit.
ALTER TABLE tenants
    ADD COLUMN rate_limit_rps integer CHECK (rate_limit_rps BETWEEN 0 AND 1000000),
    ADD COLUMN rate_limit_burst integer CHECK (rate_limit_burst BETWEEN 1 AND 10000000);
