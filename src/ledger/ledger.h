/* ledger.h — the money rules (docs/ledger.md): accounts, transfers, holds
 * and orders as one call each of the SQL functions on the ledger tables
 * (sql/013_ledger_transfers.sql, sql/014_ledger_holds_orders.sql), history
 * and audits as statements on them (sql/015_ledger_reads.sql). Every call
 * takes the caller's transaction (NULL: the call on its own), so that an
 * API request's effects commit with its idempotency record. */
#ifndef OL_LEDGER_H
#define OL_LEDGER_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "db/db.h"

/* Outcomes. On a failure the callback's obj, when not NULL, holds the
 * problem's extension members (e.g. {"account": id, "available": n}). */
typedef enum {
	LG_OK = 0,
	LG_NOT_FOUND,         /* 404 <kind>_not_found (obj: which account) */
	LG_EXISTS,            /* 409 <kind>_exists: the client id, other parameters */
	LG_UNAVAILABLE,       /* 503, retryable */
	LG_FAILED,            /* 500 */
	LG_DUPLICATE,         /* the client id exists with identical parameters: obj is it (200) */
	LG_INSUFFICIENT,      /* 402 insufficient_funds */
	LG_FROZEN,            /* 409 account_frozen */
	LG_CURRENCY_MISMATCH, /* 422 currency_mismatch */
	LG_OVERFLOW,          /* 422 amount_overflow */
	LG_NOT_PENDING,       /* 409 hold_not_pending (obj: "hold_status") */
	LG_TOO_MUCH,          /* capture above the hold's amount (400), refund above the rest (422) */
	LG_INVALID,           /* 400 invalid_request (obj: "field"), e.g. a cursor of another list */
} lg_status;

/* Where a ledger call runs. */
typedef struct lg_ctx {
	db_pool *db; /* statements outside a transaction (reads, tx NULL) */
	db_tx *tx;
	const char *tenant;
} lg_ctx;

/* A result: status, and the API object (or list) on LG_OK. */
typedef void (*lg_cb)(lg_status st, json_t *obj, void *arg);
/* A document's result: on LG_OK and LG_DUPLICATE, doc is the document as
 * the SQL wrote it (compact JSON: already the reply's and the event's
 * text, so it is not parsed and written again) and obj is NULL; otherwise
 * doc is NULL and obj as for lg_cb. */
typedef void (*lg_doc_cb)(lg_status st, json_t *obj, const char *doc, void *arg);

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
/* A page of the owner's accounts by id: obj = {"data": [...], "next":
 * <position>|null}, next only when there are more; pass it as `after` for
 * the next page (anything else there: LG_INVALID, {"field":"cursor"}). */
void lg_accounts_by_owner(const lg_ctx *c, const char *owner, int limit, const json_t *after, lg_cb cb, void *arg);

/* ---- transfers (transfers.c) ---- */

typedef struct lg_transfer_new {
	const char *id;          /* NULL: generated */
	const char *from, *to;   /* account ids or "@world:<CUR>"; NULL: @world of the other's currency */
	int64_t amount;
	const char *currency;    /* NULL: the account's (credits and debits) */
	const char *description; /* NULL: none */
	const json_t *metadata;  /* NULL: {} */
	const char *kind;        /* "transfer", "credit", "debit": part of the parameters compared on a reused id */
} lg_transfer_new;

/* Posts one transfer (LG_DUPLICATE with the existing one for a reused id). */
void lg_transfer_create(const lg_ctx *c, const lg_transfer_new *t, lg_doc_cb cb, void *arg);
/* Posts n transfers, all or nothing: obj = {"transfers": [...]}; on a
 * failure nothing is written and obj has "index" (the first failing one). */
void lg_transfer_batch(const lg_ctx *c, const lg_transfer_new *t, int n, lg_cb cb, void *arg);
void lg_transfer_get(const lg_ctx *c, const char *id, lg_cb cb, void *arg);

/* ---- holds (holds.c) ---- */

typedef struct lg_hold_new {
	const char *id; /* NULL: generated */
	const char *from, *to;
	int64_t amount;
	const char *currency;
	int64_t expires_in_s;
	const json_t *metadata;
} lg_hold_new;

void lg_hold_create(const lg_ctx *c, const lg_hold_new *h, lg_cb cb, void *arg);
void lg_hold_get(const lg_ctx *c, const char *id, lg_cb cb, void *arg);
/* amount 0: the whole hold. */
void lg_hold_capture(const lg_ctx *c, const char *id, int64_t amount, lg_cb cb, void *arg);
void lg_hold_void(const lg_ctx *c, const char *id, lg_cb cb, void *arg);
/* The sweeper: expires up to limit pending holds past their time, of any
 * tenant (a call on its own on db); cb gets how many (or -1 on error). */
void lg_holds_sweep(db_pool *db, int limit, void (*cb)(long n, void *arg), void *arg);

/* ---- orders (orders.c, docs/orders.md) ---- */

typedef struct lg_order_new {
	const char *id; /* NULL: generated */
	const char *customer, *merchant;
	int64_t amount;
	const char *currency;
	int64_t expires_in_s;
	const json_t *metadata;
} lg_order_new;

void lg_order_create(const lg_ctx *c, const lg_order_new *o, lg_cb cb, void *arg);
void lg_order_get(const lg_ctx *c, const char *id, lg_cb cb, void *arg);
/* LG_NOT_PENDING (obj: "order_status") when the order is not created. */
void lg_order_settle(const lg_ctx *c, const char *id, lg_cb cb, void *arg);
void lg_order_cancel(const lg_ctx *c, const char *id, lg_cb cb, void *arg);
/* amount 0: the rest; LG_TOO_MUCH above what is refundable. */
void lg_order_refund(const lg_ctx *c, const char *id, int64_t amount, lg_cb cb, void *arg);
/* Newest first: obj = {"data": [...], "next": <position>|null}. */
void lg_orders_list(const lg_ctx *c, const char *status, const char *customer, int limit, const json_t *after, lg_cb cb,
		    void *arg);
/* Expires up to limit created orders past their time, of any tenant (a
 * call on its own on db); cb gets how many (or -1 on error). */
void lg_orders_sweep(db_pool *db, int limit, void (*cb)(long n, void *arg), void *arg);

/* ---- the inbox of hot accounts (inbox.c, docs/orders.md) ---- */

/* Posts the inboxes of up to limit hot accounts (any tenant; one whose row
 * or shards another transaction holds is left for the next round) into
 * their accounts; cb gets how many credits (or -1 on error). */
void lg_inbox_sweep(db_pool *db, int limit, void (*cb)(long n, void *arg), void *arg);

/* ---- history (history.c) ---- */

typedef struct lg_range {
	int64_t from_us, to_us; /* [from, to) */
	bool desc;
	int limit;
	const json_t *after; /* position from a previous page, or NULL */
} lg_range;

/* obj = {"data": [...], "next": <position>|null} */
void lg_entries(const lg_ctx *c, const char *account, const lg_range *r, lg_cb cb, void *arg);
/* obj = {"account","at","posted","seq"} */
void lg_balance_at(const lg_ctx *c, const char *account, int64_t at_us, lg_cb cb, void *arg);
/* obj = {"account","currency","from","to","opening_balance","closing_balance","debits","credits","count"} */
void lg_statement(const lg_ctx *c, const char *account, int64_t from_us, int64_t to_us, lg_cb cb, void *arg);
/* obj = {"account","ok","entries","head","balance_matches","alg"[,"first_bad_seq"]} */
void lg_verify(const lg_ctx *c, const char *account, lg_cb cb, void *arg);
/* A page of the audit of a currency (audit.c). */
typedef struct lg_audit_page {
	int limit;            /* accounts per page (1-1000) */
	int64_t max_entries;  /* chain entries and @world legs per page (a started chain is finished) */
	const json_t *cursor; /* the previous page's "next", or NULL for the first */
} lg_audit_page;
/* obj = {"ok" (the verdict; null before the last page),"accounts","sum","world",
 * "failed_accounts" (this page's),"next" (position or null)}; LG_INVALID
 * (obj {"field":"cursor"}) for a cursor this audit did not issue for the currency. */
void lg_audit_verify(const lg_ctx *c, const char *currency, const lg_audit_page *p, lg_cb cb, void *arg);

/* A new id: prefix + 12 hex digits of milliseconds + 20 random hex digits
 * (time-ordered, unguessable). */
void lg_new_id(const char *prefix, char *out, size_t len);

#endif
