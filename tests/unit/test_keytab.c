/* test_keytab.c — the API key cache's table (auth/keytab.h): when full it
 * evicts exactly one entry, the least recently used (a flood of new ids
 * cannot flush the table, and an entry in use survives it); and the token
 * bucket (util/tbucket.h) that bounds the lookups of unknown ids. */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include "auth/keytab.h"
#include "tap.h"
#include "util/tbucket.h"

static void id_of(int i, char out[AUTH_KEY_ID_LEN + 1])
{
	snprintf(out, AUTH_KEY_ID_LEN + 1, "%016x", (unsigned)i);
}

static void test_lru(void)
{
	keytab *t = keytab_new(4);
	char id[AUTH_KEY_ID_LEN + 1];
	for (int i = 0; i < 4; i++) {
		id_of(i, id);
		keytab_entry *e = keytab_put(t, id);
		CHECK(e != NULL && strcmp(e->id, id) == 0 && !e->filled, "a new entry: zeroed but for its id");
		e->found = true;
	}
	CHECK(keytab_count(t) == 4 && keytab_evictions(t) == 0, "four entries fit");
	id_of(0, id);
	CHECK(keytab_get(t, id) != NULL, "0 used again: now the most recent");
	id_of(4, id);
	CHECK(keytab_put(t, id) != NULL, "a fifth entry");
	CHECK(keytab_count(t) == 4 && keytab_evictions(t) == 1, "one entry evicted, not the whole table");
	id_of(1, id);
	CHECK(keytab_get(t, id) == NULL, "the least recently used (1) is the one evicted");
	bool kept = true;
	for (int i = 0; i <= 4; i++) {
		if (i == 1)
			continue;
		id_of(i, id);
		keytab_entry *e = keytab_get(t, id);
		kept = kept && e != NULL && (i == 4 || e->found);
	}
	CHECK(kept, "0, 2, 3 keep their data, 4 is in");

	/* A flood of 1000 new ids past an entry that is used between them. */
	id_of(0, id);
	keytab_entry *v = keytab_get(t, id);
	v->filled = true;
	memcpy(v->tenant, "acme", 5);
	bool ok = true;
	for (int i = 100; i < 1100; i++) {
		char x[AUTH_KEY_ID_LEN + 1];
		id_of(i, x);
		ok = ok && keytab_put(t, x) != NULL;
		ok = ok && keytab_get(t, id) != NULL; /* the valid key keeps being used */
	}
	CHECK(ok, "1000 new ids inserted, the used one found after each");
	v = keytab_get(t, id);
	CHECK(v != NULL && v->filled && strcmp(v->tenant, "acme") == 0, "an entry in use survives a flood of new ids");
	CHECK(keytab_count(t) == 4 && keytab_evictions(t) == 1 + 1000, "one eviction per new id, the count stays at the maximum");
	id_of(1099, id);
	CHECK(keytab_get(t, id) != NULL, "the newest flood id is there");
	id_of(1097, id);
	CHECK(keytab_get(t, id) != NULL, "and the two before it");
	id_of(1096, id);
	CHECK(keytab_get(t, id) == NULL, "older flood ids are gone");
	CHECK(keytab_put(t, "0123456789abcdef0") == NULL, "an over-long id is refused");
	keytab_free(t);

	/* Many entries: every one found, then evicted in order of last use. */
	t = keytab_new(1000);
	ok = true;
	for (int i = 0; i < 1000; i++) {
		id_of(i, id);
		ok = ok && keytab_put(t, id) != NULL;
	}
	CHECK(ok, "1000 inserted");
	bool all = true;
	for (int i = 999; i >= 0; i--) { /* reverse: 0 becomes the most recent */
		id_of(i, id);
		all = all && keytab_get(t, id) != NULL;
	}
	CHECK(all, "1000 entries all found");
	for (int i = 2000; i < 2500; i++) {
		id_of(i, id);
		ok = ok && keytab_put(t, id) != NULL;
	}
	CHECK(ok, "500 more inserted");
	bool order = true;
	for (int i = 0; i < 1000; i++) {
		id_of(i, id);
		order = order && ((keytab_get(t, id) != NULL) == (i < 500));
	}
	CHECK(order, "500 new ids evicted the 500 least recently used");
	keytab_free(t);
}

static void test_bucket(void)
{
	tbucket b = {0};
	int64_t now = 1000000, retry = 0;
	int taken = 0;
	while (tbucket_take(&b, 10, 10, now, &retry))
		taken++;
	CHECK(taken == 10, "a new bucket holds its burst");
	CHECK(retry == 100000, "empty: a token is back in 1/rate s");
	CHECK(!tbucket_take(&b, 10, 10, now + 99999, NULL), "not before");
	CHECK(tbucket_take(&b, 10, 10, now + 100000, NULL), "then one");
	CHECK(tbucket_left(&b, 10, 10, now + 10 * 1000000) == 10, "refills up to the burst, no more");
	CHECK(tbucket_full_in_us(&b, 10, 10) == 0, "full");
	CHECK(tbucket_take(&b, 10, 10, now + 10 * 1000000, NULL) && tbucket_full_in_us(&b, 10, 10) == 100000, "full again 1/rate s after one take");
	CHECK(tbucket_left(&b, 10, 10, now) == 9, "a clock that goes back refills nothing");
}

int main(void)
{
	if (sodium_init() < 0)
		return 1;
	test_lru();
	test_bucket();
	return it_test_done();
}
