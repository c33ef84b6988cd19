/* reads.h — what the ledger's reads share (history.c, audit.c,
 * audit_cursor.c): cells of a statement's result, exact sums beyond int64,
 * and the position of a currency audit's pass. */
#ifndef OL_LEDGER_READS_H
#define OL_LEDGER_READS_H

#include <libpq-fe.h>

#include "ledger/ledger_int.h"

/* The int64 of a result's cell (0 when NULL: the columns read are NOT NULL
 * or say so). */
int64_t lg_cell_i64(const PGresult *r, int row, int col);
/* The text of a cell, NULL when SQL NULL. */
const char *lg_cell(const PGresult *r, int row, int col);

/* An integer's decimal text (a numeric of PostgreSQL, a cursor's sum) as
 * 128 bits: digits with an optional '-', no leading zeros, no "-0", at
 * most 38 digits (sums of int64 balances have far fewer); else false. */
bool lg_i128_parse(const char *s, __int128 *out) OL_WARN_UNUSED;
/* A 128-bit integer as a JSON string of decimal digits. */
json_t *lg_i128_str(__int128 v);
/* An exact integer for a reply: a JSON integer within int64, beyond it the
 * string of digits (the API writes it as a JSON number, api/history.c). */
json_t *lg_i128_json(__int128 v);
/* The same from a numeric's text; NULL when it is not one (logged). */
json_t *lg_numeric_json(const char *s);

/* The entries of a chain that one statement walks (history.c: verify in
 * parts; audit.c: a longer chain is walked that way, not inside the audit's
 * page): about 7 µs each on the server, well inside db_query_timeout_ms. */
#define LG_VERIFY_PART 50000

/* ---- the position of a currency audit's pass (audit_cursor.c) -------- */

typedef struct lg_audit_pos {
	bool world;       /* reading the @world legs (else the accounts) */
	char *after;      /* the last account id (or @world leg's transfer id) read, NULL: from the start */
	int64_t accounts; /* verified so far */
	__int128 sum;     /* balances so far (accounts' posted and inbox credits) */
	__int128 world_sum; /* @world legs so far */
	bool ok;          /* every chain so far verified */
	char *snap;       /* the first page's snapshot (pg_snapshot text), or NULL */
} lg_audit_pos;

/* The position from the client's cursor object: exactly what
 * lg_audit_pos_json wrote for this currency, else false. */
bool lg_audit_pos_load(const json_t *c, const char *currency, lg_audit_pos *out) OL_WARN_UNUSED;
json_t *lg_audit_pos_json(const lg_audit_pos *p, const char *currency);
void lg_audit_pos_clear(lg_audit_pos *p);
/* A pg_snapshot's text as PostgreSQL writes it (digits, "xmin:xmax:xip,..."). */
#define LG_AUDIT_SNAP_MAX 2048
bool lg_audit_snap_ok(const char *s);

#endif
