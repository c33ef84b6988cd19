/* db_fake.h — a db layer for fuzz targets of the item layer
 * (fuzz_items_request.c): no PostgreSQL. Batches are answered after the
 * caller returns (as the real pool does), from db_fake_drain: a table
 * definition load finds the tables the harness declared, every other
 * statement is recorded and answered "database unavailable". */
#ifndef OL_FUZZ_DB_FAKE_H
#define OL_FUZZ_DB_FAKE_H

#include <stdbool.h>

#include "db/db.h"

/* A table the fake catalogue holds: its name, definition JSON and TTL
 * attribute (NULL: none). */
typedef struct db_fake_table {
	const char *name, *definition, *ttl_attribute;
} db_fake_table;

void db_fake_tables(const db_fake_table *tables, int n);
/* Runs the queued answers (and those they queue) until none is left. */
void db_fake_drain(void);

/* What the statements other than table loads looked like since the last
 * db_fake_reset: how many, and whether the canary occurred in any SQL text
 * (request data must only ever be a parameter). */
typedef struct db_fake_seen {
	int data_statements;
	bool canary_in_sql;
} db_fake_seen;

extern db_fake_seen db_fake;
void db_fake_reset(const char *canary);

#endif
