-- bench/ledger_proto/setup.sql — the benchmark's accounts for the prototype
-- (psql -v tenant=bench -v naccounts=1000): a10000.., funded, after
-- schema.sql and transfer_fn.sql. Same-length ids, so their text order
-- (the lock order) is their numeric order, which the pgbench scripts use.
INSERT INTO ledger_proto.accounts (tenant, id, currency, posted, overdraft_limit)
SELECT :'tenant', 'a' || (10000 + g), 'EUR', 1000000000000, 0 FROM generate_series(0, :naccounts - 1) g;
SELECT id FROM item_tables WHERE tenant = :'tenant' AND name = 'ol:ledger';
