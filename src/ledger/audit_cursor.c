/* audit_cursor.c — the position of a pass of the currency audit (audit.c)
 * as the JSON object the API encodes into its opaque cursor, and back. A
 * client sends it back, so loading it is a parser of untrusted input: it
 * accepts exactly what lg_audit_pos_json writes for that currency
 * (fuzz/fuzz_audit_cursor.c). */
#include "ledger/ledger_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/util.h"

#define SUM_DIGITS 38 /* below 2^127; sums of int64 balances have far fewer */

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

static bool i128_parse(const json_t *j, __int128 *out)
{
	const char *s = json_string_value(j);
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

/* A key of the index rows or of the @world legs: exactly these attributes,
 * each {"S": string}, the partition the one of this pass. */
static bool key_ok(const json_t *k, const char *const *names, size_t n, const char *pk_name, const char *pk)
{
	if (!json_is_object(k) || json_object_size(k) != n)
		return false;
	for (size_t i = 0; i < n; i++) {
		const json_t *av = json_object_get(k, names[i]);
		const char *s = json_string_value(json_object_get(av, "S"));
		if (!json_is_object(av) || json_object_size(av) != 1 || s == NULL || strlen(s) > 512 ||
		    strlen(s) != json_string_length(json_object_get(av, "S")))
			return false;
	}
	return strcmp(json_string_value(json_object_get(json_object_get(k, pk_name), "S")), pk) == 0;
}

void lg_audit_world_pk(const char *currency, int shard, char *out, size_t len)
{
	snprintf(out, len, "WORLD#%s#%02d", currency, shard);
}

void lg_audit_pos_clear(lg_audit_pos *p)
{
	json_decref(p->start);
	p->start = NULL;
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
	static const char *const acc_key[] = {"PK", "SK", "GSI6PK", "GSI6SK"};
	static const char *const world_key[] = {"PK", "SK"};
	static const char *const members[] = {"c", "ph", "k", "sh", "n", "s", "w", "ok", "sn"};
	memset(out, 0, sizeof(*out));
	if (!json_is_object(c))
		return false;
	const char *key;
	json_t *v;
	json_object_foreach((json_t *)c, key, v)
	{
		bool known = false;
		for (size_t i = 0; i < OL_ARRAY_LEN(members); i++)
			known = known || strcmp(key, members[i]) == 0;
		if (!known)
			return false;
	}
	const char *cur = json_string_value(json_object_get(c, "c"));
	const char *ph = json_string_value(json_object_get(c, "ph"));
	const json_t *n = json_object_get(c, "n"), *sh = json_object_get(c, "sh"), *ok = json_object_get(c, "ok");
	const json_t *k = json_object_get(c, "k");
	if (json_is_null(k))
		k = NULL; /* the start of a shard */
	if (cur == NULL || strcmp(cur, currency) != 0 || ph == NULL || !json_is_integer(n) || json_integer_value(n) < 0 ||
	    !json_is_integer(sh) || json_integer_value(sh) < 0 || json_integer_value(sh) >= LG_WORLD_SHARDS ||
	    !json_is_boolean(ok) || !i128_parse(json_object_get(c, "s"), &out->sum) ||
	    !i128_parse(json_object_get(c, "w"), &out->world_sum))
		return false;
	const char *snap = json_string_value(json_object_get(c, "sn"));
	if (!lg_audit_snap_ok(snap) || (out->snap = strdup(snap)) == NULL)
		return false;
	out->accounts = json_integer_value(n);
	out->shard = (int)json_integer_value(sh);
	out->ok = json_is_true(ok);
	if (strcmp(ph, "a") == 0) {
		char pk[16];
		snprintf(pk, sizeof(pk), "CUR#%s", currency);
		if (k == NULL || !key_ok(k, acc_key, OL_ARRAY_LEN(acc_key), "GSI6PK", pk) || out->shard != 0)
			goto fail;
		out->world = false;
	} else if (strcmp(ph, "w") == 0) {
		char pk[32];
		lg_audit_world_pk(currency, out->shard, pk, sizeof(pk));
		if (k != NULL && !key_ok(k, world_key, OL_ARRAY_LEN(world_key), "PK", pk))
			goto fail;
		out->world = true;
	} else {
		goto fail;
	}
	out->start = json_incref((json_t *)k);
	return true;
fail:
	lg_audit_pos_clear(out);
	return false;
}

json_t *lg_audit_pos_json(const lg_audit_pos *p, const char *currency)
{
	return json_pack("{s:s, s:s, s:O?, s:i, s:I, s:o, s:o, s:b, s:s}", "c", currency, "ph", p->world ? "w" : "a", "k",
			 p->start, "sh", p->shard, "n", (json_int_t)p->accounts, "s", lg_i128_str(p->sum), "w",
			 lg_i128_str(p->world_sum), "ok", p->ok, "sn", p->snap ? p->snap : "");
}
