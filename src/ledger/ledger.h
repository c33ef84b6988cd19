/* ledger.h — the money rules, written as item-layer operations on the
 * tenant's system table (single-table layout, docs/ledger.md). Every call
 * takes the caller's transaction (NULL: the call on its own), so that an
 * API request's effects commit with its idempotency record. */
#ifndef OL_LEDGER_H
#define OL_LEDGER_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "db/db.h"
#include "items/items.h"

typedef enum {
	LG_OK = 0,
	LG_NOT_FOUND,   /* 404 */
	LG_EXISTS,      /* 409 <kind>_exists */
	LG_UNAVAILABLE, /* 503, retryable */
	LG_FAILED,      /* 500 */
} lg_status;

/* Where a ledger call runs. */
typedef struct lg_ctx {
	it_store *items;
	db_tx *tx;
	const char *tenant;
} lg_ctx;

/* A result: status, and the API object (or list) on LG_OK. */
typedef void (*lg_cb)(lg_status st, json_t *obj, void *arg);

/* ---- accounts (accounts.c) ---- */

typedef struct lg_account_new {
	const char *id; /* NULL: generated */
	const char *currency;
	const char *owner; /* NULL: none */
	int64_t overdraft_limit;
	const json_t *metadata; /* NULL: {} */
} lg_account_new;

/* Creates the account (LG_EXISTS when the id is taken). */
void lg_account_create(const lg_ctx *c, const lg_account_new *a, lg_cb cb, void *arg);
void lg_account_get(const lg_ctx *c, const char *id, lg_cb cb, void *arg);
/* Freezes or unfreezes; the account as it is afterwards. */
void lg_account_set_frozen(const lg_ctx *c, const char *id, bool frozen, lg_cb cb, void *arg);
/* A page of the owner's accounts: obj = {"data": [...], "next": <key>|null}
 * where next is the opaque position to pass as `after` for the next page. */
void lg_accounts_by_owner(const lg_ctx *c, const char *owner, int limit, const json_t *after, lg_cb cb, void *arg);

/* A new id: prefix + 12 hex digits of milliseconds + 20 random hex digits
 * (time-ordered, unguessable). */
void lg_new_id(const char *prefix, char *out, size_t len);

#endif
