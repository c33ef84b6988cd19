/* keytab.c — key id -> entry with least-recently-used eviction (keytab.h):
 * a chained hash table plus a doubly linked list, newest at the head. */
#include "auth/keytab.h"

#include <stdlib.h>
#include <string.h>

#include <sodium.h>

struct keytab {
	keytab_entry **buckets;
	size_t nbuckets; /* power of two */
	size_t count, max;
	keytab_entry *newest, *oldest;
	unsigned long evictions;
	unsigned char hkey[crypto_shorthash_KEYBYTES];
};

keytab *keytab_new(size_t max)
{
	keytab *t = calloc(1, sizeof(*t));
	if (t == NULL)
		return NULL;
	t->max = max > 0 ? max : 1;
	t->nbuckets = 16;
	while (t->nbuckets < t->max)
		t->nbuckets <<= 1;
	t->buckets = calloc(t->nbuckets, sizeof(*t->buckets));
	if (t->buckets == NULL) {
		free(t);
		return NULL;
	}
	randombytes_buf(t->hkey, sizeof(t->hkey));
	return t;
}

void keytab_free(keytab *t)
{
	if (t == NULL)
		return;
	for (keytab_entry *e = t->newest, *next; e != NULL; e = next) {
		next = e->older;
		free(e);
	}
	free(t->buckets);
	free(t);
}

static size_t bucket_of(const keytab *t, const char *id)
{
	return (size_t)util_shorthash64(t->hkey, id) & (t->nbuckets - 1);
}

static void unlink_lru(keytab *t, keytab_entry *e)
{
	if (e->newer != NULL)
		e->newer->older = e->older;
	else
		t->newest = e->older;
	if (e->older != NULL)
		e->older->newer = e->newer;
	else
		t->oldest = e->newer;
	e->newer = e->older = NULL;
}

static void push_newest(keytab *t, keytab_entry *e)
{
	e->newer = NULL;
	e->older = t->newest;
	if (t->newest != NULL)
		t->newest->newer = e;
	t->newest = e;
	if (t->oldest == NULL)
		t->oldest = e;
}

static void touch(keytab *t, keytab_entry *e)
{
	if (t->newest == e)
		return;
	unlink_lru(t, e);
	push_newest(t, e);
}

keytab_entry *keytab_get(keytab *t, const char *id)
{
	for (keytab_entry *e = t->buckets[bucket_of(t, id)]; e != NULL; e = e->hnext) {
		if (strcmp(e->id, id) == 0) {
			touch(t, e);
			return e;
		}
	}
	return NULL;
}

static void evict_oldest(keytab *t)
{
	keytab_entry *e = t->oldest;
	if (e == NULL)
		return;
	unlink_lru(t, e);
	for (keytab_entry **p = &t->buckets[bucket_of(t, e->id)]; *p != NULL; p = &(*p)->hnext) {
		if (*p == e) {
			*p = e->hnext;
			break;
		}
	}
	free(e);
	t->count--;
	t->evictions++;
}

keytab_entry *keytab_put(keytab *t, const char *id)
{
	keytab_entry *e = keytab_get(t, id);
	if (e != NULL)
		return e;
	if (strlen(id) > AUTH_KEY_ID_LEN)
		return NULL;
	if (t->count >= t->max)
		evict_oldest(t);
	e = calloc(1, sizeof(*e));
	if (e == NULL)
		return NULL;
	memcpy(e->id, id, strlen(id) + 1);
	size_t b = bucket_of(t, id);
	e->hnext = t->buckets[b];
	t->buckets[b] = e;
	push_newest(t, e);
	t->count++;
	return e;
}

size_t keytab_count(const keytab *t)
{
	return t->count;
}

unsigned long keytab_evictions(const keytab *t)
{
	return t->evictions;
}
