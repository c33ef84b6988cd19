-- bench/ledger_proto/setup.sql — the reference's accounts (psql -v
-- tenant=bench -v naccounts=1000): a10000.., funded, on the ledger tables,
-- after transfer_fn.sql. Same-length ids, so their text order (the lock
-- order) is their numeric order. Prints the tenant's ol:ledger table id.
INSERT INTO ledger.accounts (tenant, id, currency, posted, overdraft_limit)
SELECT :'tenant', 'a' || (10000 + g), 'EUR', 1000000000000, 0 FROM generate_series(0, :naccounts - 1) g
ON CONFLICT (tenant, id) DO NOTHING;
SELECT id FROM item_tables WHERE tenant = :'tenant' AND name = 'ol:ledger';
