/* db_fake.c — see db_fake.h. Statement results are real PGresults built
 * with libpq's PQmakeEmptyPGresult/PQsetvalue, so the code under test
 * reads them exactly as it reads the server's. */
#include "db_fake.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "db/db_internal.h"

db_fake_seen db_fake;

static const db_fake_table *tables;
static int ntables;
static const char *canary;

typedef struct pending {
	db_cb cb;
	void *arg;
	PGresult *table; /* a table load's answer, or NULL: unavailable */
	int nresults;
	struct pending *next;
} pending;

static pending *head, *tail;

void db_fake_tables(const db_fake_table *t, int n)
{
	tables = t;
	ntables = n;
}

void db_fake_reset(const char *c)
{
	memset(&db_fake, 0, sizeof(db_fake));
	canary = c;
}

static PGresult *table_result(const char *name)
{
	PGresult *r = PQmakeEmptyPGresult(NULL, PGRES_TUPLES_OK);
	PGresAttDesc cols[3] = {
		{.name = "id", .format = 0, .typid = 20, .typlen = 8, .atttypmod = -1},
		{.name = "definition", .format = 0, .typid = 25, .typlen = -1, .atttypmod = -1},
		{.name = "ttl_attribute", .format = 0, .typid = 25, .typlen = -1, .atttypmod = -1},
	};
	assert(r != NULL && PQsetResultAttrs(r, 3, cols));
	for (int i = 0; i < ntables; i++) {
		if (strcmp(tables[i].name, name) != 0)
			continue;
		char id[16];
		snprintf(id, sizeof(id), "%d", i + 1);
		assert(PQsetvalue(r, 0, 0, id, (int)strlen(id)));
		assert(PQsetvalue(r, 0, 1, (char *)tables[i].definition, (int)strlen(tables[i].definition)));
		const char *ttl = tables[i].ttl_attribute;
		assert(PQsetvalue(r, 0, 2, (char *)ttl, ttl != NULL ? (int)strlen(ttl) : -1));
		break;
	}
	return r; /* no row: no such table */
}

void db_exec(db_pool *p, db_batch *b, db_cb cb, void *arg)
{
	(void)p;
	assert(b != NULL && b->n >= 1);
	pending *q = calloc(1, sizeof(*q));
	assert(q != NULL);
	q->cb = cb;
	q->arg = arg;
	q->nresults = b->n;
	const db_item *first = &b->items[0];
	if (b->n == 1 && strcmp(db_item_name(first), "it_table_load") == 0) {
		assert(first->nparams == 2 && first->values[0] != NULL && first->values[1] != NULL);
		q->table = table_result(first->values[1]);
	} else {
		for (int i = 0; i < b->n; i++) {
			const db_item *it = &b->items[i];
			assert(it->sql != NULL && it->nparams >= 0);
			db_fake.data_statements++;
			if (canary != NULL && strstr(it->sql, canary) != NULL)
				db_fake.canary_in_sql = true;
		}
	}
	db_batch_free(b);
	if (tail != NULL)
		tail->next = q;
	else
		head = q;
	tail = q;
}

void db_fake_drain(void)
{
	while (head != NULL) {
		pending *q = head;
		head = q->next;
		if (head == NULL)
			tail = NULL;
		PGresult *results[1] = {q->table};
		db_result res = {.failed_index = -1};
		if (q->table != NULL) {
			res.status = DB_OK;
			res.nresults = 1;
			res.results = results;
		} else {
			res.status = DB_ERR_UNAVAILABLE;
			res.message = "fake: no database";
		}
		q->cb(&res, q->arg);
		PQclear(q->table);
		free(q);
	}
}

/* The item layer opens transactions only when a caller passes one (the
 * ledger, the sweeper): never on the path under test. */
db_tx *db_tx_new(db_pool *p)
{
	(void)p;
	abort();
}

db_tx *db_tx_new_snapshot(db_pool *p)
{
	(void)p;
	abort();
}

void db_tx_set_prefix(db_tx *tx, db_batch *prefix, db_cb cb, void *arg)
{
	(void)tx, (void)prefix, (void)cb, (void)arg;
	abort();
}

void db_tx_exec(db_tx *tx, db_batch *b, int flags, db_cb cb, void *arg)
{
	(void)tx, (void)b, (void)flags, (void)cb, (void)arg;
	abort();
}

bool db_tx_defer(db_tx *tx, db_batch *b)
{
	(void)tx, (void)b;
	abort();
}
