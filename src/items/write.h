/* write.h — SQL fragments shared by every write of the item layer: the
 * column list of an item row and the derived columns (TTL expiry and the
 * secondary-index slots) computed in SQL from the new item, so that Put,
 * Update and transactions derive them identically. */
#ifndef IT_WRITE_H
#define IT_WRITE_H

#include "items/items_int.h"
#include "items/sql.h"

/* "$n::bigint" style parameters for table id, now, pk, sk. */
bool it_w_key_params(it_sql *q, const it_table *t, const char *pkenc, const char *skenc, it_error *e)
	__attribute__((warn_unused_result));
/* The row's key predicate: "<alias>.table_id = $.. AND <alias>.pk = .. AND <alias>.sk = ..". */
bool it_w_key_pred(it_sql *q, const it_table *t, const char *alias, const char *pkenc, const char *skenc, it_error *e)
	__attribute__((warn_unused_result));
/* The stored item as the conditions see it: NULL when expired. */
bool it_w_visible_item(it_sql *q, const it_table *t, const char *alias, it_error *e) __attribute__((warn_unused_result));
/* " AND (<alias>.expires_at IS NULL OR <alias>.expires_at > now)", only for
 * a table with TTL: without it every expires_at is NULL (disabling TTL
 * clears them), so the predicate would only cost time. */
bool it_w_not_expired(it_sql *q, const it_table *t, const char *alias, it_error *e) __attribute__((warn_unused_result));
/* "(table_id, pk, sk, item, expires_at, x1pk, x1sk, ...)". */
bool it_w_insert_cols(it_sql *q, const it_table *t) __attribute__((warn_unused_result));
/* The matching values, for an item held in SQL expression n (e.g. "n.item"). */
bool it_w_insert_vals(it_sql *q, const it_table *t, const char *pkenc, const char *skenc, const char *n, it_error *e)
	__attribute__((warn_unused_result));
/* The two slot columns of one index for item expression n ("pk, sk"). */
bool it_w_slot_values(it_sql *q, const it_index *ix, const char *n, it_error *e) __attribute__((warn_unused_result));
/* "item = n, expires_at = ..., x1pk = ..." for an UPDATE. */
bool it_w_sets(it_sql *q, const it_table *t, const char *n, it_error *e) __attribute__((warn_unused_result));
/* One write of an item (or a ConditionCheck), as a transaction or a single
 * operation builds it. Pointers are borrowed. */
enum { IT_W_GET, IT_W_PUT, IT_W_UPDATE, IT_W_DELETE, IT_W_CHECK };
typedef struct it_wspec {
	int kind;
	const it_table *t;
	const it_value *key;  /* Update, Delete, Check */
	const it_value *item; /* Put */
	const char *pkenc, *skenc;
	const it_node *cond;
	const it_update *upd;
	bool cond_null; /* the condition holds when there is no item */
	bool txn;       /* record the outcome with ol_txn_mark() */
	bool want_new;  /* the caller needs the new item's text back */
} it_wspec;

/* The main statement: locks the row, evaluates the condition in SQL,
 * writes, and returns one row (old item text, existed, written: new item
 * text for Put/Update, boolean for Delete/Check). */
bool it_w_add_main(db_batch *b, const it_wspec *w, it_error *e) __attribute__((warn_unused_result));
/* The fast path of a conditional Update when neither the old item nor
 * whether it existed is needed, and "no item" fails the condition: a plain
 * UPDATE ... WHERE key AND condition RETURNING, same result shape as main. */
bool it_w_add_update_simple(db_batch *b, const it_wspec *w, it_error *e) __attribute__((warn_unused_result));
/* Insert-if-absent for Put/Update when the condition holds for no item;
 * returns one row (new item text or NULL). */
bool it_w_add_insert(db_batch *b, const it_wspec *w, it_error *e) __attribute__((warn_unused_result));
/* A Put whose condition is attribute_not_exists(<key attribute>): */
bool it_w_put_if_absent(const it_wspec *w);
/* ... as one INSERT ... ON CONFLICT statement, same result shape as main
 * (a failure whose old item is NULL lost a race with a concurrent insert). */
bool it_w_add_put_if_absent(db_batch *b, const it_wspec *w, it_error *e) __attribute__((warn_unused_result));
/* Unconditional Put: an upsert returning (NULL, false, new item text). */
bool it_w_add_upsert(db_batch *b, const it_wspec *w, it_error *e) __attribute__((warn_unused_result));

/* Current epoch seconds as text (TTL comparisons). */
void it_w_now(char buf[24]);

#endif
