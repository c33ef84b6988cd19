/* batch.c — a list of statements with copied parameters, sent as one
 * pipeline by the pool. */
#include "db/db_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <stdint.h>

db_batch *db_batch_new(void)
{
	return calloc(1, sizeof(db_batch));
}

void db_batch_free(db_batch *b)
{
	if (b == NULL)
		return;
	for (int i = 0; i < b->n; i++) {
		db_item *it = &b->items[i];
		if (it->block != NULL) {
			free(it->block);
		} else {
			for (int j = 0; j < it->nparams; j++)
				free(it->values[j]);
			free(it->values);
			free(it->lengths);
			free(it->formats);
		}
		free(it->owned_sql);
	}
	free(b->items);
	free(b);
}

int db_batch_len(const db_batch *b)
{
	return b->n;
}

bool db_batch_add(db_batch *b, const db_stmt *st, const char *const *values)
{
	return db_batch_add_ex(b, st, values, NULL, NULL);
}

bool db_batch_add_ex(db_batch *b, const db_stmt *st, const char *const *values, const int *lengths, const int *formats)
{
	if (b->n == b->cap) {
		int ncap = b->cap ? b->cap * 2 : 4;
		db_item *ni = realloc(b->items, (size_t)ncap * sizeof(*ni));
		if (ni == NULL)
			return false;
		b->items = ni;
		b->cap = ncap;
	}
	db_item *it = &b->items[b->n];
	memset(it, 0, sizeof(*it));
	it->name = st->name;
	it->sql = st->sql;
	it->nparams = st->nparams;
	if (st->nparams > 0) {
		/* One allocation per statement: the pointers, the lengths, the
		 * formats, then the texts (a statement is sent once and freed
		 * whole; a malloc per parameter was most of a request's). */
		size_t np = (size_t)st->nparams, text = 0;
		for (size_t j = 0; j < np; j++)
			if (values[j] != NULL)
				text += (lengths != NULL ? (size_t)lengths[j] : strlen(values[j])) + 1;
		char *blk = malloc(np * (sizeof(char *) + 2 * sizeof(int)) + text);
		if (blk == NULL)
			return false;
		it->block = blk;
		it->values = (char **)(void *)blk;
		it->lengths = (int *)(void *)(blk + np * sizeof(char *));
		it->formats = it->lengths + np;
		char *t = (char *)(it->formats + np);
		for (size_t j = 0; j < np; j++) {
			it->values[j] = NULL;
			it->lengths[j] = 0;
			it->formats[j] = 0;
			if (values[j] == NULL)
				continue;
			size_t len = lengths != NULL ? (size_t)lengths[j] : strlen(values[j]);
			memcpy(t, values[j], len);
			t[len] = '\0';
			it->values[j] = t;
			it->lengths[j] = (int)len;
			it->formats[j] = formats != NULL ? formats[j] : 0;
			t += len + 1;
		}
	}
	b->n++;
	return true;
}

/* Names a dynamic statement after its text, so equal texts share one
 * prepared statement per connection: two 64-bit multiply-xorshift hashes
 * taken eight bytes at a time (this runs for every dynamic statement). */
static void name_from_text(db_item *it, const char *sql)
{
	size_t len = strlen(sql);
	uint64_t h1 = 0x9e3779b97f4a7c15ULL ^ len, h2 = 0xc2b2ae3d27d4eb4fULL ^ len;
	size_t i = 0;
	for (; i + 8 <= len; i += 8) {
		uint64_t w;
		memcpy(&w, sql + i, 8);
		h1 = (h1 ^ w) * 0xff51afd7ed558ccdULL;
		h1 ^= h1 >> 32;
		h2 = (h2 ^ w) * 0xc4ceb9fe1a85ec53ULL;
		h2 ^= h2 >> 29;
	}
	for (; i < len; i++) {
		h1 = (h1 ^ (unsigned char)sql[i]) * 0xff51afd7ed558ccdULL;
		h2 = (h2 ^ (unsigned char)sql[i]) * 0xc4ceb9fe1a85ec53ULL;
	}
	h1 ^= h1 >> 33;
	h2 ^= h2 >> 31;
	snprintf(it->dyn_name, sizeof(it->dyn_name), "d%016llx%06llx", (unsigned long long)h1,
		 (unsigned long long)(h2 & 0xffffffULL));
	/* name stays NULL: db_item_name() finds dyn_name, wherever a later
	 * realloc of the items array moves it. */
}

bool db_batch_add_sql(db_batch *b, const char *sql, int nparams, const char *const *values)
{
	char *copy = strdup(sql);
	if (copy == NULL)
		return false;
	db_stmt tmp = {NULL, copy, nparams};
	if (!db_batch_add_ex(b, &tmp, values, NULL, NULL)) {
		free(copy);
		return false;
	}
	db_item *it = &b->items[b->n - 1];
	it->owned_sql = copy;
	it->sql = copy;
	name_from_text(it, copy);
	return true;
}

bool db_batch_add_sql_take(db_batch *b, char *sql, int nparams, char **values)
{
	if (b->n == b->cap) {
		int ncap = b->cap ? b->cap * 2 : 4;
		db_item *ni = realloc(b->items, (size_t)ncap * sizeof(*ni));
		if (ni == NULL)
			return false;
		b->items = ni;
		b->cap = ncap;
	}
	db_item *it = &b->items[b->n];
	memset(it, 0, sizeof(*it));
	it->nparams = nparams;
	if (nparams > 0) {
		it->values = calloc((size_t)nparams, sizeof(char *));
		it->lengths = calloc((size_t)nparams, sizeof(int));
		it->formats = calloc((size_t)nparams, sizeof(int));
		if (it->values == NULL || it->lengths == NULL || it->formats == NULL) {
			free(it->values);
			free(it->lengths);
			free(it->formats);
			return false;
		}
		for (int j = 0; j < nparams; j++) {
			it->values[j] = values[j];
			values[j] = NULL;
			it->lengths[j] = it->values[j] ? (int)strlen(it->values[j]) : 0;
		}
	}
	it->owned_sql = sql;
	it->sql = sql;
	name_from_text(it, sql);
	b->n++;
	return true;
}

bool db_batch_splice(db_batch *dst, db_batch *src)
{
	if (src == NULL)
		return true;
	if (dst->n + src->n > dst->cap) {
		int ncap = dst->cap ? dst->cap : 4;
		while (ncap < dst->n + src->n)
			ncap *= 2;
		db_item *ni = realloc(dst->items, (size_t)ncap * sizeof(*ni));
		if (ni == NULL)
			return false;
		dst->items = ni;
		dst->cap = ncap;
	}
	if (src->n > 0) /* an empty batch may have no array at all */
		memcpy(dst->items + dst->n, src->items, (size_t)src->n * sizeof(db_item));
	dst->n += src->n;
	src->n = 0;
	db_batch_free(src);
	return true;
}

bool db_retryable(const db_result *res)
{
	return res->status == DB_ERR_UNAVAILABLE || res->status == DB_ERR_BUSY || res->status == DB_ERR_TIMEOUT ||
	       (res->status == DB_ERR_QUERY && res->sqlstate[0] == '4' && res->sqlstate[1] == '0');
}
