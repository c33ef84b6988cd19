/* audit_cursor.c — the position of a pass of the currency audit (audit.c)
 * as the JSON object the API encodes into its opaque cursor, and back; and
 * the exact integers of the reads (sums beyond int64). A client sends the
 * position back, so loading it is a parser of untrusted input: it accepts
 * exactly what lg_audit_pos_json writes for that currency
 * (fuzz/fuzz_audit_cursor.c). */
#include "ledger/reads.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "util/util.h"

#define SUM_DIGITS 38 /* below 2^127; sums of int64 balances have far fewer */

int64_t lg_cell_i64(const PGresult *r, int row, int col)
{
	if (PQgetisnull(r, row, col))
		return 0;
	return strtoll(PQgetvalue(r, row, col), NULL, 10);
}

const char *lg_cell(const PGresult *r, int row, int col)
{
	return PQgetisnull(r, row, col) ? NULL : PQgetvalue(r, row, col);
}

json_t *lg_i128_str(__int128 v)
{
	char buf[48], *p = buf + sizeof(buf) - 1;
	bool neg = v < 0;
	unsigned __int128 u = neg ? -(unsigned __int128)v : (unsigned __int128)v;
	*p = '\0';
	do {
		*--p = (char)('0' + (int)(u % 10));
		u /= 10;
	} while (u != 0);
	if (neg)
		*--p = '-';
	return json_string(p);
}

json_t *lg_i128_json(__int128 v)
{
	if (v >= INT64_MIN && v <= INT64_MAX)
		return json_integer((json_int_t)v);
	return lg_i128_str(v);
}

bool lg_i128_parse(const char *s, __int128 *out)
{
	if (s == NULL)
		return false;
	bool neg = *s == '-';
	const char *p = neg ? s + 1 : s;
	if (*p == '\0' || strlen(p) > SUM_DIGITS || (p[0] == '0' && p[1] != '\0'))
		return false;
	__int128 v = 0;
	for (; *p != '\0'; p++) {
		if (*p < '0' || *p > '9')
			return false;
		v = v * 10 + (*p - '0');
	}
	*out = neg ? -v : v;
	return !(neg && v == 0);
}

json_t *lg_numeric_json(const char *s)
{
	__int128 v;
	if (!lg_i128_parse(s, &v)) {
		log_error("ledger_sum_unreadable", "{s:s}", "value", s != NULL ? s : "(null)");
		return NULL;
	}
	return lg_i128_json(v);
}

/* An account id or a transfer id: where a page starts after. */
static bool id_ok(const json_t *j)
{
	const char *s = json_string_value(j);
	size_t n = s != NULL ? strlen(s) : 0;
	return n == json_string_length(j) && util_id_ok(s, n);
}

void lg_audit_pos_clear(lg_audit_pos *p)
{
	free(p->after);
	p->after = NULL;
	free(p->snap);
	p->snap = NULL;
}

bool lg_audit_snap_ok(const char *s)
{
	/* xmin:xmax:xip,xip,... (PostgreSQL's pg_snapshot text) */
	size_t n = s != NULL ? strlen(s) : 0;
	if (n < 4 || n > LG_AUDIT_SNAP_MAX)
		return false;
	int colons = 0;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		bool digit = c >= '0' && c <= '9';
		bool first = i == 0 || s[i - 1] == ':' || s[i - 1] == ',';
		if (c == ':')
			colons++;
		if (!digit && !(c == ':' && colons <= 2 && !first) && !(c == ',' && colons == 2 && !first))
			return false;
		if (digit && c == '0' && first && i + 1 < n && s[i + 1] >= '0' && s[i + 1] <= '9')
			return false; /* no leading zeros */
	}
	return colons == 2 && s[n - 1] != ',';
}

bool lg_audit_pos_load(const json_t *c, const char *currency, lg_audit_pos *out)
{
	static const char *const members[] = {"c", "ph", "k", "n", "s", "w", "ok", "sn"};
	memset(out, 0, sizeof(*out));
	if (!json_is_object(c) || json_object_size(c) != OL_ARRAY_LEN(members))
		return false;
	for (size_t i = 0; i < OL_ARRAY_LEN(members); i++)
		if (json_object_get(c, members[i]) == NULL)
			return false;
	const char *cur = json_string_value(json_object_get(c, "c"));
	const char *ph = json_string_value(json_object_get(c, "ph"));
	const json_t *n = json_object_get(c, "n"), *ok = json_object_get(c, "ok"), *k = json_object_get(c, "k");
	const char *snap = json_string_value(json_object_get(c, "sn"));
	if (cur == NULL || strcmp(cur, currency) != 0 || ph == NULL || !json_is_integer(n) || json_integer_value(n) < 0 ||
	    !json_is_boolean(ok) || !lg_i128_parse(json_string_value(json_object_get(c, "s")), &out->sum) ||
	    !lg_i128_parse(json_string_value(json_object_get(c, "w")), &out->world_sum) || !lg_audit_snap_ok(snap))
		return false;
	if (strcmp(ph, "a") == 0)
		out->world = false; /* an accounts page ends after an account */
	else if (strcmp(ph, "w") == 0)
		out->world = true; /* after a leg, or at the start of the legs */
	else
		return false;
	if (!(id_ok(k) || (out->world && json_is_null(k))))
		return false;
	out->accounts = json_integer_value(n);
	out->ok = json_is_true(ok);
	if ((out->snap = strdup(snap)) == NULL || (!json_is_null(k) && (out->after = strdup(json_string_value(k))) == NULL)) {
		lg_audit_pos_clear(out);
		return false;
	}
	return true;
}

json_t *lg_audit_pos_json(const lg_audit_pos *p, const char *currency)
{
	return json_pack("{s:s, s:s, s:s?, s:I, s:o, s:o, s:b, s:s}", "c", currency, "ph", p->world ? "w" : "a", "k", p->after,
			 "n", (json_int_t)p->accounts, "s", lg_i128_str(p->sum), "w", lg_i128_str(p->world_sum), "ok", p->ok,
			 "sn", p->snap ? p->snap : "");
}
