/* Differential test of the SQL compilation of expressions (src/items/sql.c,
 * sql_update.c, sql/003_items_functions.sql) against the reference
 * evaluator (src/items/eval.c) on a real PostgreSQL: hand-written tricky
 * cases plus thousands of random (item, condition) and (item, update) pairs
 * from a small grammar over a small attribute vocabulary, items holding every
 * type. Each pair runs twice: with the item as a bound parameter (the planner
 * folds everything) and as a column of a subquery (evaluated per row).
 * Needs $ONCELEDGER_TEST_DATABASE_URL (exit 77 = skipped without it);
 * ONCELEDGER_TEST_SEED and ONCELEDGER_TEST_CASES change the random part. */
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <libpq-fe.h>

#include "db/migrate.h"
#include "items/eval.h"
#include "items/sql.h"
#include "../unit/tap.h"

static PGconn *pg;
static int skipped;		/* generated expressions the parser rejected */
static int ncond, nupd;		/* cases compared */
static int nerr;		/* cases whose expected outcome is an error */

/* How often each expected outcome occurred (coverage of the generator). */
static struct {
	char *what;
	int n;
} seen[64];

static void
note(const char *what)
{
	size_t i;

	for (i = 0; i < 64 && seen[i].what != NULL; i++) {
		if (strcmp(seen[i].what, what) == 0) {
			seen[i].n++;
			return;
		}
	}
	if (i < 64 && (seen[i].what = strdup(what)) != NULL)
		seen[i].n = 1;
}

/* ---- random numbers (xorshift64*) ---- */

static uint64_t rng_state = 88172645463325252ULL;

static uint32_t
rnd(uint32_t n)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return (uint32_t)((rng_state * 2685821657736338717ULL) >> 33) % n;
}

#define PICK(a) ((a)[rnd(sizeof(a) / sizeof((a)[0]))])

/* ---- a small vocabulary ---- */

static const char *const top_names[] = { "a", "b", "c", "n", "l", "m", "s",
	"x.y", "sp ace" };
static const char *const sub_names[] = { "a", "b", "k", "x.y" };
static const char *const s_pool[] = { "", "a", "ab", "abc", "b", "ba",
	"\xc3\xa9", "\xf0\x9f\x98\x80", "a\xf0\x9f\x98\x80", "A", "z", "1",
	"a\"q\\" };
static const char *const n_pool[] = { "0", "1", "-1", "2", "10", "1.5",
	"-0.5", "100", "0.001", "3", "0.1",
	"12345678901234567890123456789012345678",
	"99999999999999999999999999999999999999",
	"9.9999999999999999999999999999999999999E+125", "1E-130", "-1E-130",
	"1E+125", "-9.9999999999999999999999999999999999999E+125",
	"0.00000000000000000000000000000000000001" };
static const char *const b_pool[] = { "", "AA==", "AQ==", "AQI=", "/w==",
	"YQ==", "YWI=", "/wA=" };
static const char *const type_names[] = { "S", "N", "B", "BOOL", "NULL", "M",
	"L", "SS", "NS", "BS" };

static json_t *gen_av(int depth, int bias);

static json_t *
gen_set(const char *const *pool, size_t n)
{
	json_t *a = json_array();
	size_t k = 1 + rnd(3);

	for (size_t i = 0; i < k; i++) {
		const char *m = pool[rnd((uint32_t)n)];
		size_t j;

		for (j = 0; j < json_array_size(a); j++) {
			if (strcmp(json_string_value(json_array_get(a, j)), m) == 0)
				break;
		}
		if (j == json_array_size(a))
			json_array_append_new(a, json_string(m));
	}
	return a;
}

/* A random AttributeValue; bias >= 0 forces that type. */
static json_t *
gen_av(int depth, int bias)
{
	int t = bias >= 0 ? bias : (int)rnd(10);
	json_t *o = json_object(), *in;
	size_t k;

	if (depth > 2 && (t == IT_M || t == IT_L))
		t = IT_S;
	switch (t) {
	case IT_S:
		json_object_set_new(o, "S", json_string(PICK(s_pool)));
		break;
	case IT_N:
		json_object_set_new(o, "N", json_string(PICK(n_pool)));
		break;
	case IT_B:
		json_object_set_new(o, "B", json_string(PICK(b_pool)));
		break;
	case IT_BOOL:
		json_object_set_new(o, "BOOL", json_boolean(rnd(2)));
		break;
	case IT_NULL:
		json_object_set_new(o, "NULL", json_true());
		break;
	case IT_M:
		in = json_object();
		k = rnd(4);
		for (size_t i = 0; i < k; i++)
			json_object_set_new(in, PICK(sub_names), gen_av(depth + 1,
			    -1));
		json_object_set_new(o, "M", in);
		break;
	case IT_L:
		in = json_array();
		k = rnd(4);
		for (size_t i = 0; i < k; i++)
			json_array_append_new(in, gen_av(depth + 1, -1));
		json_object_set_new(o, "L", in);
		break;
	case IT_SS:
		json_object_set_new(o, "SS", gen_set(s_pool,
		    sizeof(s_pool) / sizeof(s_pool[0])));
		break;
	case IT_NS:
		json_object_set_new(o, "NS", gen_set(n_pool,
		    sizeof(n_pool) / sizeof(n_pool[0])));
		break;
	default:
		json_object_set_new(o, "BS", gen_set(b_pool,
		    sizeof(b_pool) / sizeof(b_pool[0])));
		break;
	}
	return o;
}

/* An item with the key and about half of the vocabulary (dense: most of
 * it, with the types updates can work on more likely). */
static json_t *
gen_item(bool dense)
{
	json_t *o = json_object();

	json_object_set_new(o, "pk", json_pack("{s:s}", "S", "k1"));
	for (size_t i = 0; i < sizeof(top_names) / sizeof(top_names[0]); i++) {
		if (rnd(dense ? 5 : 2) == 0)
			continue;
		json_object_set_new(o, top_names[i], gen_av(0, dense &&
		    rnd(2) ? (int)PICK(((const int[]){ IT_N, IT_M, IT_L,
		    IT_SS, IT_NS, IT_BS })) : -1));
	}
	return o;
}

/* ---- expressions ---- */

/* An expression being generated: its text, ExpressionAttributeNames and
 * ExpressionAttributeValues. */
typedef struct gen {
	char buf[4096];
	size_t len;
	json_t *names, *values;
	int nv, nn;
	json_t *item;		/* updates: paths are often taken from it */
} gen;

static void g_add(gen *g, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void
g_add(gen *g, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(g->buf + g->len, sizeof(g->buf) - g->len, fmt, ap);
	va_end(ap);
	if (n > 0)
		g->len += (size_t)n;
	if (g->len >= sizeof(g->buf))
		g->len = sizeof(g->buf) - 1;
}

static void
g_value(gen *g, json_t *v)
{
	char key[16];

	snprintf(key, sizeof(key), ":v%d", g->nv++);
	json_object_set_new(g->values, key, v);
	g_add(g, "%s", key);
}

static void
g_name(gen *g, const char *name)
{
	char key[16];

	if (strchr(name, '.') == NULL && strchr(name, ' ') == NULL &&
	    rnd(4) != 0) {
		g_add(g, "%s", name);
		return;
	}
	snprintf(key, sizeof(key), "#n%d", g->nn++);
	json_object_set_new(g->names, key, json_string(name));
	g_add(g, "%s", key);
}

static void
g_path(gen *g)
{
	size_t k = rnd(5) < 3 ? 0 : 1 + rnd(2);

	g_name(g, PICK(top_names));
	for (size_t i = 0; i < k; i++) {
		if (rnd(2)) {
			g_add(g, ".");
			g_name(g, PICK(sub_names));
		} else {
			g_add(g, "[%u]", rnd(4));
		}
	}
}

/* The type tag of an AttributeValue ("S", "M", ...). */
static const char *
av_tag(json_t *av)
{
	void *it = av != NULL ? json_object_iter(av) : NULL;

	return it != NULL ? json_object_iter_key(it) : "";
}

/* A path that exists in g->item (sometimes one past a list's end): returns
 * the AttributeValue there, or NULL. Falls back to g_path without item. */
static json_t *
g_path_from(gen *g)
{
	json_t *cur = NULL, *in;
	const char *k = NULL;
	size_t n, i;

	if (g->item == NULL || json_object_size(g->item) == 0 || rnd(4) == 0) {
		g_path(g);
		return NULL;
	}
	n = rnd((uint32_t)json_object_size(g->item));
	i = 0;
	json_object_foreach(g->item, k, cur) {
		if (i++ == n)
			break;
	}
	g_name(g, k);
	for (int depth = 0; depth < 3 && cur != NULL && rnd(2); depth++) {
		const char *t = av_tag(cur);

		in = json_object_get(cur, t);
		if (strcmp(t, "M") == 0 && json_object_size(in) > 0) {
			n = rnd((uint32_t)json_object_size(in));
			i = 0;
			json_object_foreach(in, k, cur) {
				if (i++ == n)
					break;
			}
			g_add(g, ".");
			g_name(g, k);
		} else if (strcmp(t, "L") == 0) {
			n = rnd((uint32_t)json_array_size(in) + 2);
			g_add(g, "[%zu]", n);
			cur = json_array_get(in, n);
		} else {
			break;
		}
	}
	return cur;
}

static void
g_operand(gen *g, int bias)
{
	switch (rnd(7)) {
	case 0:
	case 1:
	case 2:
		g_path(g);
		break;
	case 3:
		g_add(g, "size(");
		g_path(g);
		g_add(g, ")");
		break;
	default:
		g_value(g, gen_av(1, bias >= 0 && rnd(3) ? bias : rnd(2) ?
		    (int)PICK(((const int[]){ IT_S, IT_N, IT_B })) : -1));
		break;
	}
}

static void
g_cond(gen *g, int depth)
{
	static const char *const ops[] = { "=", "<>", "<", "<=", ">", ">=" };
	int r = (int)rnd(depth > 2 ? 8 : 12), t;

	switch (r) {
	case 0:
	case 1:
	case 2:
		t = (int)PICK(((const int[]){ IT_S, IT_N, IT_B, -1 }));
		g_operand(g, t);
		g_add(g, " %s ", PICK(ops));
		g_operand(g, t);
		break;
	case 3:
		t = (int)PICK(((const int[]){ IT_S, IT_N, IT_B }));
		g_operand(g, t);
		g_add(g, " BETWEEN ");
		g_operand(g, t);
		g_add(g, " AND ");
		g_operand(g, t);
		break;
	case 4:
		g_operand(g, -1);
		g_add(g, " IN (");
		for (uint32_t i = 0, k = 1 + rnd(3); i < k; i++) {
			if (i > 0)
				g_add(g, ", ");
			g_operand(g, -1);
		}
		g_add(g, ")");
		break;
	case 5:
		g_add(g, "%s(", rnd(2) ? "attribute_exists" :
		    "attribute_not_exists");
		g_path(g);
		g_add(g, ")");
		break;
	case 6:
		g_add(g, "attribute_type(");
		g_path(g);
		g_add(g, ", ");
		if (rnd(6) == 0)
			g_path(g);
		else
			g_value(g, json_pack("{s:s}", "S", PICK(type_names)));
		g_add(g, ")");
		break;
	case 7:
		t = rnd(2) ? IT_S : IT_B;
		g_add(g, "%s(", rnd(2) ? "begins_with" : "contains");
		g_path(g);
		g_add(g, ", ");
		g_operand(g, t);
		g_add(g, ")");
		break;
	case 8:
		g_add(g, "NOT ");
		g_cond(g, depth + 1);
		break;
	case 9:
		g_add(g, "(");
		g_cond(g, depth + 1);
		g_add(g, ")");
		break;
	default:
		g_cond(g, depth + 1);
		g_add(g, r == 10 ? " AND " : " OR ");
		g_cond(g, depth + 1);
		break;
	}
}

/* The operand of a path in an update (g_operand without size()). */
static void
g_upd_operand(gen *g, int bias)
{
	if (rnd(2))
		g_path_from(g);
	else
		g_value(g, gen_av(1, bias));
}

static void
g_setval(gen *g)
{
	switch (rnd(8)) {
	case 0:
	case 1:
		g_upd_operand(g, -1);
		break;
	case 2:
	case 3:
		g_upd_operand(g, IT_N);
		g_add(g, rnd(2) ? " + " : " - ");
		g_upd_operand(g, IT_N);
		break;
	case 4:
	case 5:
		g_add(g, "if_not_exists(");
		g_path_from(g);
		g_add(g, ", ");
		if (rnd(3) == 0) {
			g_add(g, "list_append(");
			g_upd_operand(g, IT_L);
			g_add(g, ", ");
			g_upd_operand(g, IT_L);
			g_add(g, ")");
		} else {
			g_upd_operand(g, -1);
		}
		g_add(g, ")");
		break;
	default:
		g_add(g, "list_append(");
		if (rnd(3) == 0) {
			g_add(g, "if_not_exists(");
			g_path_from(g);
			g_add(g, ", ");
			g_value(g, gen_av(1, IT_L));
			g_add(g, ")");
		} else {
			g_upd_operand(g, IT_L);
		}
		g_add(g, ", ");
		g_upd_operand(g, IT_L);
		g_add(g, ")");
		break;
	}
}

static void
g_update(gen *g)
{
	static const char *const kw[] = { "SET", "REMOVE", "ADD", "DELETE" };
	bool used[4] = { false };
	uint32_t nclauses = 1 + rnd(3);

	for (uint32_t c = 0; c < nclauses; c++) {
		int k = (int)rnd(4);
		uint32_t nact = 1 + rnd(3);

		if (used[k])
			continue;
		used[k] = true;
		g_add(g, "%s%s ", g->len > 0 ? " " : "", kw[k]);
		for (uint32_t i = 0; i < nact; i++) {
			json_t *at;
			const char *t;

			if (i > 0)
				g_add(g, ", ");
			at = g_path_from(g);
			t = av_tag(at);
			if (k >= 2 && at != NULL && rnd(4) != 0 &&
			    (strcmp(t, "N") == 0 || strcmp(t, "SS") == 0 ||
			    strcmp(t, "NS") == 0 || strcmp(t, "BS") == 0) &&
			    (k == 2 || strcmp(t, "N") != 0)) {
				int ty = 0;

				while (strcmp(type_names[ty], t) != 0)
					ty++;
				g_add(g, " ");
				g_value(g, gen_av(1, ty));
				continue;
			}
			switch (k) {
			case 0:
				g_add(g, " = ");
				if (rnd(4) == 0)
					g_upd_operand(g, -1);
				else
					g_setval(g);
				break;
			case 1:
				break;
			case 2:
				g_add(g, " ");
				g_value(g, gen_av(1, (int)PICK(((const int[]){
				    IT_N, IT_N, IT_SS, IT_NS, IT_BS, IT_S }))));
				break;
			default:
				g_add(g, " ");
				g_value(g, gen_av(1, (int)PICK(((const int[]){
				    IT_SS, IT_NS, IT_BS, IT_N }))));
				break;
			}
		}
	}
}

/* ---- running one case ---- */

typedef struct outcome {
	int kind;		/* 0 bool, 1 item, 2 error */
	bool b;
	json_t *item;
	char *msg;
} outcome;

static void
outcome_clear(outcome *o)
{
	json_decref(o->item);
	free(o->msg);
	memset(o, 0, sizeof(*o));
}

static bool
outcome_equal(const outcome *a, const outcome *b)
{
	if (a->kind != b->kind)
		return false;
	switch (a->kind) {
	case 0:
		return a->b == b->b;
	case 1:
		return json_equal(a->item, b->item);
	default:
		return strcmp(a->msg, b->msg) == 0;
	}
}

static char *
outcome_str(const outcome *o)
{
	char *s = NULL, *j;

	switch (o->kind) {
	case 0:
		return strdup(o->b ? "true" : "false");
	case 1:
		j = json_dumps(o->item, JSON_COMPACT | JSON_SORT_KEYS);
		if (asprintf(&s, "item %s", j ? j : "?") < 0)
			s = NULL;
		free(j);
		return s;
	default:
		if (asprintf(&s, "error %s", o->msg) < 0)
			s = NULL;
		return s;
	}
}

/* Runs sql with $1 = item, $2 = key and the builder's parameters. */
static void
run_sql(const char *sql, const it_sql *q, const char *item, const char *key,
    bool is_update, outcome *out)
{
	const char **vals = calloc(q->nparams + 2, sizeof(*vals));
	Oid *types;
	PGresult *r;
	const char *st;

	memset(out, 0, sizeof(*out));
	vals[0] = item;
	vals[1] = key;
	for (size_t i = 0; i < q->nparams; i++)
		vals[i + 2] = q->params[i];
	types = calloc(q->nparams + 2, sizeof(*types));
	types[0] = types[1] = 3802;	/* jsonb */
	r = PQexecParams(pg, sql, (int)q->nparams + 2, types, vals, NULL, NULL,
	    0);
	free(vals);
	free(types);
	if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1) {
		const char *v = PQgetvalue(r, 0, 0);

		if (PQgetisnull(r, 0, 0)) {
			out->kind = 2;
			out->msg = strdup("SQL NULL");
		} else if (is_update) {
			out->kind = 1;
			out->item = json_loads(v, 0, NULL);
		} else {
			out->kind = 0;
			out->b = strcmp(v, "t") == 0;
		}
	} else {
		st = PQresultErrorField(r, PG_DIAG_SQLSTATE);
		out->kind = 2;
		if (st != NULL && strcmp(st, IT_SQL_ERRCODE) == 0) {
			out->msg = strdup(PQresultErrorField(r,
			    PG_DIAG_MESSAGE_PRIMARY));
		} else if (asprintf(&out->msg, "[%s] %s", st ? st : "?",
		    PQresultErrorMessage(r)) < 0) {
			out->msg = NULL;
		}
	}
	PQclear(r);
}

static it_value *
item_of(const char *s)
{
	json_t *j = s != NULL ? json_loads(s, 0, NULL) : NULL;
	it_error e = { 0 };
	it_value *v = NULL;

	if (j == NULL || !it_item_from_json(j, &v, &e))
		v = NULL;
	json_decref(j);
	it_error_clear(&e);
	return v;
}

/* One case: expr against item (JSON or NULL), as a condition or an update
 * (key: the key item for a missing item, or NULL). Returns false when the
 * parser rejects the expression. */
static bool
run_case(bool is_update, const char *expr, const char *names,
    const char *values, const char *item_json, const char *key_json,
    const char *label)
{
	json_t *jn = names ? json_loads(names, 0, NULL) : NULL;
	json_t *jv = values ? json_loads(values, 0, NULL) : NULL;
	it_value *item = item_json ? item_of(item_json) : NULL;
	it_value *key = key_json ? item_of(key_json) : NULL, *ni = NULL;
	it_error e = { 0 };
	it_params p;
	it_node *cond = NULL;
	it_update *u = NULL;
	outcome want = { 0 }, got;
	bool r, parsed = false;
	char *canon_item = NULL, *canon_key = NULL;

	if (!it_params_init(&p, jn, jv, &e))
		goto out;
	if (is_update ? !it_parse_update(expr, strlen(expr), &p, &u, &e) :
	    !it_parse_condition(IT_EXPR_CONDITION, expr, strlen(expr), &p,
	    &cond, &e)) {
		it_params_free(&p);
		goto out;
	}
	it_params_free(&p);
	parsed = true;
	/* The stored forms: exactly it_item_to_json. */
	if (item != NULL) {
		json_t *j = it_item_to_json(item);

		canon_item = json_dumps(j, JSON_COMPACT);
		json_decref(j);
	}
	if (key != NULL) {
		json_t *j = it_item_to_json(key);

		canon_key = json_dumps(j, JSON_COMPACT);
		json_decref(j);
	}
	if (is_update) {
		if (it_apply_update(u, item, key, &ni, &e)) {
			want.kind = 1;
			want.item = it_item_to_json(ni);
		} else {
			want.kind = 2;
			want.msg = strdup(e.msg);
		}
	} else if (it_eval_condition(cond, item, &r, &e)) {
		want.b = r;
	} else {
		want.kind = 2;
		want.msg = strdup(e.msg);
	}
	it_error_clear(&e);
	if (want.kind == 2)
		nerr++;
	note(want.kind == 2 ? want.msg : want.kind == 1 ? "update applied" :
	    want.b ? "condition true" : "condition false");
	for (int mode = 0; mode < 2; mode++) {
		it_sql q;
		char *sql = NULL;
		const char *col = mode == 0 ? "$1" : "s.item";
		const char *kc = mode == 0 ? "$2" : "s.k";
		bool ok;

		it_sql_init(&q, 3);
		ok = is_update ? it_sql_update(&q, u, col, kc, &e) :
		    it_sql_condition(&q, cond, col, &e);
		if (!ok) {
			got.kind = 2;
			got.msg = strdup(e.msg ? e.msg : "?");
			got.item = NULL;
			it_error_clear(&e);
		} else {
			if (mode == 0) {
				if (asprintf(&sql, "SELECT %s", it_sql_text(&q)) < 0)
					sql = NULL;
			} else if (asprintf(&sql, "SELECT %s FROM (SELECT "
			    "$1::jsonb AS item, $2::jsonb AS k OFFSET 0) AS s",
			    it_sql_text(&q)) < 0) {
				sql = NULL;
			}
			run_sql(sql, &q, canon_item, canon_key, is_update, &got);
		}
		{
			char name[256];
			bool eq = outcome_equal(&want, &got);

			snprintf(name, sizeof(name), "%s %s [%s] %.160s", label,
			    is_update ? "update" : "cond", mode ? "row" : "param",
			    expr);
			CHECK(eq, name);
			if (!eq) {
				char *sw = outcome_str(&want), *sg = outcome_str(&got);

				printf("#   item:   %s\n#   key:    %s\n#   names:  %s\n"
				    "#   values: %s\n#   want:   %s\n#   got:    %s\n"
				    "#   sql:    %s\n", canon_item ? canon_item : "(none)",
				    canon_key ? canon_key : "(none)",
				    names ? names : "-", values ? values : "-", sw, sg,
				    sql ? sql : "-");
				free(sw);
				free(sg);
			}
		}
		outcome_clear(&got);
		free(sql);
		it_sql_free(&q);
	}
	if (is_update)
		nupd++;
	else
		ncond++;
out:
	if (!parsed)
		skipped++;
	outcome_clear(&want);
	it_error_clear(&e);
	it_node_free(cond);
	it_update_free(u);
	it_value_free(item);
	it_value_free(key);
	it_value_free(ni);
	free(canon_item);
	free(canon_key);
	json_decref(jn);
	json_decref(jv);
	return parsed;
}

/* ---- hand-written cases ---- */

static const char *ITEM = "{\"pk\":{\"S\":\"A\"},\"bal\":{\"N\":\"100\"},"
    "\"nm\":{\"S\":\"caf\\u00e9\"},\"emo\":{\"S\":\"a\\ud83d\\ude00b\"},"
    "\"tags\":{\"SS\":[\"x\",\"y\"]},\"ns\":{\"NS\":[\"1\",\"10\",\"2\"]},"
    "\"bs\":{\"BS\":[\"AQ==\",\"/w==\"]},"
    "\"l\":{\"L\":[{\"N\":\"1\"},{\"S\":\"two\"},{\"M\":{\"x\":{\"N\":\"3\"}}}]},"
    "\"m\":{\"M\":{\"k\":{\"S\":\"v\"},\"n\":{\"M\":{}},\"x.y\":{\"N\":\"7\"}}},"
    "\"b\":{\"B\":\"AAEC\"},\"f\":{\"BOOL\":true},\"z\":{\"NULL\":true},"
    "\"big\":{\"N\":\"99999999999999999999999999999999999999\"},"
    "\"huge\":{\"N\":\"9.9999999999999999999999999999999999999E+125\"},"
    "\"tiny\":{\"N\":\"1E-130\"},\"el\":{\"L\":[]},\"em\":{\"M\":{}},"
    "\"M\":{\"M\":{\"L\":{\"L\":[{\"S\":\"q\"}]},\"0\":{\"N\":\"1\"},"
    "\"S\":{\"SS\":[\"M\"]}}}}";

typedef struct hcase {
	const char *expr, *names, *values;
} hcase;

static const hcase hand_conds[] = {
	{ "bal >= :v", NULL, "{\":v\":{\"N\":\"100\"}}" },
	{ "bal > :v", NULL, "{\":v\":{\"N\":\"99.999999999999999999999999999999999999\"}}" },
	{ "bal < :v", NULL, "{\":v\":{\"S\":\"100\"}}" },
	{ "bal = :v", NULL, "{\":v\":{\"N\":\"1E2\"}}" },
	{ "bal <> :v", NULL, "{\":v\":{\"N\":\"100.0\"}}" },
	{ "nope <> :v", NULL, "{\":v\":{\"N\":\"1\"}}" },
	{ "nope = :v", NULL, "{\":v\":{\"N\":\"1\"}}" },
	{ "NOT nope = :v", NULL, "{\":v\":{\"N\":\"1\"}}" },
	{ "NOT (nope < :v)", NULL, "{\":v\":{\"N\":\"1\"}}" },
	{ "nm > :v", NULL, "{\":v\":{\"S\":\"caf\"}}" },
	{ "nm < :v", NULL, "{\":v\":{\"S\":\"cafz\"}}" },
	{ "nm > :v", NULL, "{\":v\":{\"S\":\"cafz\"}}" },
	{ "b < :v", NULL, "{\":v\":{\"B\":\"AAED\"}}" },
	{ "b > :v", NULL, "{\":v\":{\"B\":\"AA==\"}}" },
	{ "b BETWEEN :a AND :b", NULL, "{\":a\":{\"B\":\"AA==\"},\":b\":{\"B\":\"/w==\"}}" },
	{ "bal BETWEEN :a AND :b", NULL, "{\":a\":{\"N\":\"-1\"},\":b\":{\"N\":\"100\"}}" },
	{ "bal BETWEEN :a AND :b", NULL, "{\":a\":{\"N\":\"100.5\"},\":b\":{\"N\":\"200\"}}" },
	{ "nm BETWEEN :a AND :b", NULL, "{\":a\":{\"S\":\"c\"},\":b\":{\"S\":\"d\"}}" },
	{ "bal < big", NULL, NULL },
	{ "big > huge", NULL, NULL },
	{ "tiny > :z", NULL, "{\":z\":{\"N\":\"0\"}}" },
	{ "nm < bal", NULL, NULL },
	{ "nm <> bal", NULL, NULL },
	{ "l[1] = :v", NULL, "{\":v\":{\"S\":\"two\"}}" },
	{ "l[2].x = :v", NULL, "{\":v\":{\"N\":\"3\"}}" },
	{ "l[3] = :v", NULL, "{\":v\":{\"S\":\"two\"}}" },
	{ "m.#d = :v", "{\"#d\":\"x.y\"}", "{\":v\":{\"N\":\"7\"}}" },
	{ "#d = :v", "{\"#d\":\"x.y\"}", "{\":v\":{\"N\":\"7\"}}" },
	{ "m.k[0] = :v", NULL, "{\":v\":{\"S\":\"v\"}}" },
	{ "l.x = :v", NULL, "{\":v\":{\"S\":\"v\"}}" },
	{ "tags = :v", NULL, "{\":v\":{\"SS\":[\"y\",\"x\"]}}" },
	{ "ns = :v", NULL, "{\":v\":{\"NS\":[\"2\",\"1.0\",\"10\"]}}" },
	{ "bs = :v", NULL, "{\":v\":{\"BS\":[\"/w==\",\"AQ==\"]}}" },
	{ "m = :v", NULL, "{\":v\":{\"M\":{\"x.y\":{\"N\":\"7\"},\"k\":{\"S\":\"v\"},\"n\":{\"M\":{}}}}}" },
	{ "l = :v", NULL, "{\":v\":{\"L\":[{\"N\":\"1\"},{\"S\":\"two\"},{\"M\":{\"x\":{\"N\":\"3.0\"}}}]}}" },
	{ "z = :v", NULL, "{\":v\":{\"NULL\":true}}" },
	{ "f = :v", NULL, "{\":v\":{\"BOOL\":true}}" },
	{ "f <> :v", NULL, "{\":v\":{\"BOOL\":false}}" },
	{ "size(nm) = :v", NULL, "{\":v\":{\"N\":\"4\"}}" },
	{ "size(emo) = :v", NULL, "{\":v\":{\"N\":\"4\"}}" },
	{ "size(b) = :v", NULL, "{\":v\":{\"N\":\"3\"}}" },
	{ "size(tags) > :v", NULL, "{\":v\":{\"N\":\"1\"}}" },
	{ "size(m) = :v", NULL, "{\":v\":{\"N\":\"3\"}}" },
	{ "size(l) = :v", NULL, "{\":v\":{\"N\":\"3\"}}" },
	{ "size(el) = :v", NULL, "{\":v\":{\"N\":\"0\"}}" },
	{ "size(em) < :v", NULL, "{\":v\":{\"N\":\"1\"}}" },
	{ "size(bal) = :v", NULL, "{\":v\":{\"N\":\"3\"}}" },
	{ "size(bal) <> :v", NULL, "{\":v\":{\"N\":\"3\"}}" },
	{ "size(nope) <> :v", NULL, "{\":v\":{\"N\":\"3\"}}" },
	{ "size(ns) = size(tags)", NULL, NULL },
	{ "size(l) > bal", NULL, NULL },
	{ "size(l) IN (:a, :b)", NULL, "{\":a\":{\"N\":\"2\"},\":b\":{\"N\":\"3\"}}" },
	{ "size(:v) = :n", NULL, "{\":v\":{\"S\":\"abc\"},\":n\":{\"N\":\"3\"}}" },
	{ "contains(nm, :v)", NULL, "{\":v\":{\"S\":\"af\"}}" },
	{ "contains(nm, :v)", NULL, "{\":v\":{\"S\":\"\"}}" },
	{ "contains(tags, :v)", NULL, "{\":v\":{\"S\":\"x\"}}" },
	{ "contains(tags, :v)", NULL, "{\":v\":{\"SS\":[\"x\"]}}" },
	{ "contains(ns, :v)", NULL, "{\":v\":{\"N\":\"10.0\"}}" },
	{ "contains(ns, :v)", NULL, "{\":v\":{\"S\":\"10\"}}" },
	{ "contains(bs, :v)", NULL, "{\":v\":{\"B\":\"/w==\"}}" },
	{ "contains(b, :v)", NULL, "{\":v\":{\"B\":\"AQI=\"}}" },
	{ "contains(b, :v)", NULL, "{\":v\":{\"B\":\"AgE=\"}}" },
	{ "contains(l, :v)", NULL, "{\":v\":{\"S\":\"two\"}}" },
	{ "contains(l, :v)", NULL, "{\":v\":{\"M\":{\"x\":{\"N\":\"3\"}}}}" },
	{ "contains(l, :v)", NULL, "{\":v\":{\"M\":{}}}" },
	{ "contains(m, :v)", NULL, "{\":v\":{\"S\":\"k\"}}" },
	{ "contains(nm, bal)", NULL, NULL },
	{ "contains(l, bal)", NULL, NULL },
	{ "contains(tags, m.k)", NULL, NULL },
	{ "begins_with(nm, :v)", NULL, "{\":v\":{\"S\":\"ca\"}}" },
	{ "begins_with(nm, :v)", NULL, "{\":v\":{\"S\":\"caf\\u00e9!\"}}" },
	{ "begins_with(nm, :v)", NULL, "{\":v\":{\"B\":\"Y2E=\"}}" },
	{ "begins_with(b, :v)", NULL, "{\":v\":{\"B\":\"AAE=\"}}" },
	{ "begins_with(b, :v)", NULL, "{\":v\":{\"B\":\"\"}}" },
	{ "begins_with(b, :v)", NULL, "{\":v\":{\"B\":\"AQ==\"}}" },
	{ "begins_with(tags, :v)", NULL, "{\":v\":{\"S\":\"x\"}}" },
	{ "begins_with(nm, m.k)", NULL, NULL },
	{ "begins_with(l[1], :v)", NULL, "{\":v\":{\"S\":\"tw\"}}" },
	{ "attribute_type(bal, :t)", NULL, "{\":t\":{\"S\":\"N\"}}" },
	{ "attribute_type(bal, :t)", NULL, "{\":t\":{\"S\":\"S\"}}" },
	{ "attribute_type(nope, :t)", NULL, "{\":t\":{\"S\":\"N\"}}" },
	{ "attribute_type(tags, :t)", NULL, "{\":t\":{\"S\":\"SS\"}}" },
	{ "attribute_type(em, :t)", NULL, "{\":t\":{\"S\":\"M\"}}" },
	{ "attribute_type(z, :t)", NULL, "{\":t\":{\"S\":\"NULL\"}}" },
	{ "attribute_type(l, m.k)", NULL, NULL },
	{ "attribute_type(nm, l[1])", NULL, NULL },
	{ "attribute_exists(m.n)", NULL, NULL },
	{ "attribute_exists(m.n.x)", NULL, NULL },
	{ "attribute_not_exists(l[5])", NULL, NULL },
	{ "attribute_exists(#p)", "{\"#p\":\"pk\"}", NULL },
	{ "attribute_not_exists(#p)", "{\"#p\":\"pk\"}", NULL },
	{ "bal IN (:a, :b, :c)", NULL, "{\":a\":{\"S\":\"100\"},\":b\":{\"N\":\"100\"},\":c\":{\"N\":\"1\"}}" },
	{ "bal IN (:a, nope)", NULL, "{\":a\":{\"S\":\"100\"}}" },
	{ "nope IN (:a, nope2)", NULL, "{\":a\":{\"S\":\"100\"}}" },
	{ "NOT nope IN (:a, nope2)", NULL, "{\":a\":{\"S\":\"100\"}}" },
	{ "l[0] IN (bal, tiny, m.x)", NULL, NULL },
	{ "bal = :a OR NOT (nm = :b AND nope < :a)", NULL, "{\":a\":{\"N\":\"1\"},\":b\":{\"S\":\"x\"}}" },
	{ "NOT (NOT nope = :a)", NULL, "{\":a\":{\"N\":\"1\"}}" },
	{ ":a = :b", NULL, "{\":a\":{\"N\":\"1\"},\":b\":{\"N\":\"1.00\"}}" },
	{ ":a < :b", NULL, "{\":a\":{\"S\":\"b\"},\":b\":{\"S\":\"a\"}}" },
	{ ":a <> :b", NULL, "{\":a\":{\"S\":\"b\"},\":b\":{\"N\":\"1\"}}" },
	{ "#w = :v", "{\"#w\":\"we\\\"ird,{name}\\\\\"}", "{\":v\":{\"S\":\"q\"}}" },
	{ "nm = :v", NULL, "{\":v\":{\"S\":\"it's; DROP TABLE x; --\"}}" },
	{ "#M.#L[0] = :v", "{\"#M\":\"M\",\"#L\":\"L\"}", "{\":v\":{\"S\":\"q\"}}" },
	{ "#M.#z = :v", "{\"#M\":\"M\",\"#z\":\"0\"}", "{\":v\":{\"N\":\"1\"}}" },
	{ "#M[0] = :v", "{\"#M\":\"M\"}", "{\":v\":{\"N\":\"1\"}}" },
	{ "contains(#M.#S, :v)", "{\"#M\":\"M\",\"#S\":\"S\"}", "{\":v\":{\"S\":\"M\"}}" },
	{ "attribute_type(#M.#S, :t)", "{\"#M\":\"M\",\"#S\":\"S\"}", "{\":t\":{\"S\":\"SS\"}}" },
	{ "l[999999999] = :v", NULL, "{\":v\":{\"S\":\"q\"}}" },
	{ "attribute_not_exists(l[999999999])", NULL, NULL },
};

static const hcase hand_upds[] = {
	{ "SET bal = bal - :a", NULL, "{\":a\":{\"N\":\"30.5\"}}" },
	{ "SET bal = bal + :a", NULL, "{\":a\":{\"N\":\"-100\"}}" },
	{ "SET bal = :a - bal", NULL, "{\":a\":{\"N\":\"0.001\"}}" },
	{ "SET big = big + :a", NULL, "{\":a\":{\"N\":\"1\"}}" },
	{ "SET big = big + :a", NULL, "{\":a\":{\"N\":\"0.1\"}}" },
	{ "SET big = big - :a", NULL, "{\":a\":{\"N\":\"99999999999999999999999999999999999999\"}}" },
	{ "SET huge = huge + :a", NULL, "{\":a\":{\"N\":\"1E+88\"}}" },
	{ "SET huge = huge + huge", NULL, NULL },
	{ "SET tiny = tiny - :a", NULL, "{\":a\":{\"N\":\"1.1E-130\"}}" },
	{ "SET tiny = tiny - :a", NULL, "{\":a\":{\"N\":\"0.99E-129\"}}" },
	{ "SET x = :a + :b", NULL, "{\":a\":{\"N\":\"0.1\"},\":b\":{\"N\":\"-0.1\"}}" },
	{ "SET x = :a + :b", NULL, "{\":a\":{\"N\":\"1E+125\"},\":b\":{\"N\":\"9E+125\"}}" },
	{ "SET x = :a + :b", NULL, "{\":a\":{\"N\":\"1E+100\"},\":b\":{\"N\":\"1E-100\"}}" },
	{ "SET bal = bal - nm", NULL, NULL },
	{ "SET bal = nope - :a", NULL, "{\":a\":{\"N\":\"1\"}}" },
	{ "SET bal = nm - nope", NULL, NULL },
	{ "SET a = nope, b = nm + :a", NULL, "{\":a\":{\"N\":\"1\"}}" },
	{ "SET b = nm + :a, a = nope", NULL, "{\":a\":{\"N\":\"1\"}}" },
	{ "SET a.b = :a, c = nope", NULL, "{\":a\":{\"N\":\"1\"}}" },
	{ "SET a.b = :a", NULL, "{\":a\":{\"N\":\"1\"}}" },
	{ "SET m.k.z = :a", NULL, "{\":a\":{\"N\":\"1\"}}" },
	{ "SET m.n.z = :a", NULL, "{\":a\":{\"N\":\"1\"}}" },
	{ "SET m.#d = m.#d + :a", "{\"#d\":\"x.y\"}", "{\":a\":{\"N\":\"1\"}}" },
	{ "SET l[1] = :a", NULL, "{\":a\":{\"N\":\"1\"}}" },
	{ "SET l[7] = :a, l[5] = :b", NULL, "{\":a\":{\"N\":\"7\"},\":b\":{\"N\":\"5\"}}" },
	{ "SET l[2].x = l[0]", NULL, NULL },
	{ "SET l[2].y = :a, el[0] = :a", NULL, "{\":a\":{\"BOOL\":false}}" },
	{ "SET nm[0] = :a", NULL, "{\":a\":{\"N\":\"1\"}}" },
	{ "SET m[0] = :a", NULL, "{\":a\":{\"N\":\"1\"}}" },
	{ "SET l.x = :a", NULL, "{\":a\":{\"N\":\"1\"}}" },
	{ "SET l = list_append(l, :a)", NULL, "{\":a\":{\"L\":[{\"S\":\"z\"}]}}" },
	{ "SET l = list_append(:a, l)", NULL, "{\":a\":{\"L\":[{\"S\":\"z\"}]}}" },
	{ "SET l = list_append(nm, :a)", NULL, "{\":a\":{\"L\":[]}}" },
	{ "SET q = list_append(if_not_exists(q, :e), :a)", NULL, "{\":a\":{\"L\":[{\"N\":\"1\"}]},\":e\":{\"L\":[]}}" },
	{ "SET bal = if_not_exists(bal, :a)", NULL, "{\":a\":{\"N\":\"0\"}}" },
	{ "SET c = if_not_exists(nope, :a) + :a", NULL, "{\":a\":{\"N\":\"5\"}}" },
	{ "SET c = if_not_exists(nope, nope2)", NULL, NULL },
	{ "SET a = nm, b = a, c = bal", NULL, NULL },
	{ "REMOVE l[0], l[1]", NULL, NULL },
	{ "REMOVE l[1], l[9]", NULL, NULL },
	{ "REMOVE l[0] SET l[1] = :a", NULL, "{\":a\":{\"S\":\"new\"}}" },
	{ "REMOVE l[0] SET l[4] = :a", NULL, "{\":a\":{\"S\":\"new\"}}" },
	{ "REMOVE nope, m.k, m.nope", NULL, NULL },
	{ "REMOVE nope.x", NULL, NULL },
	{ "REMOVE nm.x", NULL, NULL },
	{ "REMOVE nm[0]", NULL, NULL },
	{ "REMOVE m[0]", NULL, NULL },
	{ "REMOVE l[2].x, l[2].nope", NULL, NULL },
	{ "ADD bal :a", NULL, "{\":a\":{\"N\":\"-100.5\"}}" },
	{ "ADD big :a", NULL, "{\":a\":{\"N\":\"1\"}}" },
	{ "ADD newn :a", NULL, "{\":a\":{\"N\":\"1.50\"}}" },
	{ "ADD tags :a", NULL, "{\":a\":{\"SS\":[\"a\",\"y\",\"zz\"]}}" },
	{ "ADD ns :a", NULL, "{\":a\":{\"NS\":[\"9\",\"1.0\",\"-3\",\"100\"]}}" },
	{ "ADD bs :a", NULL, "{\":a\":{\"BS\":[\"AA==\",\"AQ==\",\"gA==\"]}}" },
	{ "ADD tags :a", NULL, "{\":a\":{\"NS\":[\"1\"]}}" },
	{ "ADD nm :a", NULL, "{\":a\":{\"N\":\"1\"}}" },
	{ "ADD m.nn :a", NULL, "{\":a\":{\"N\":\"1\"}}" },
	{ "ADD nope.nn :a", NULL, "{\":a\":{\"N\":\"1\"}}" },
	{ "ADD l[1] :a", NULL, "{\":a\":{\"SS\":[\"q\"]}}" },
	{ "ADD l[0] :a", NULL, "{\":a\":{\"N\":\"1\"}}" },
	{ "ADD l[9] :a", NULL, "{\":a\":{\"N\":\"1\"}}" },
	{ "DELETE tags :a", NULL, "{\":a\":{\"SS\":[\"x\"]}}" },
	{ "DELETE tags :a", NULL, "{\":a\":{\"SS\":[\"x\",\"y\",\"z\"]}}" },
	{ "DELETE ns :a", NULL, "{\":a\":{\"NS\":[\"1.00\",\"2\"]}}" },
	{ "DELETE bs :a", NULL, "{\":a\":{\"BS\":[\"AQ==\",\"/w==\"]}}" },
	{ "DELETE nope :a", NULL, "{\":a\":{\"SS\":[\"x\"]}}" },
	{ "DELETE nope.x :a", NULL, "{\":a\":{\"SS\":[\"x\"]}}" },
	{ "DELETE tags :a", NULL, "{\":a\":{\"NS\":[\"1\"]}}" },
	{ "DELETE bal :a", NULL, "{\":a\":{\"NS\":[\"1\"]}}" },
	{ "DELETE tags :a SET nope2 = nope", NULL, "{\":a\":{\"NS\":[\"1\"]}}" },
	{ "SET nope2 = nope DELETE tags :a", NULL, "{\":a\":{\"NS\":[\"1\"]}}" },
	{ "SET x.y = :a DELETE tags :b", NULL, "{\":a\":{\"N\":\"1\"},\":b\":{\"NS\":[\"1\"]}}" },
	{ "SET x.y = :a ADD huge :b", NULL, "{\":a\":{\"N\":\"1\"},\":b\":{\"N\":\"9E+125\"}}" },
	{ "SET #w = :a", "{\"#w\":\"we\\\"ird,{name}\\\\\"}", "{\":a\":{\"S\":\"q\"}}" },
	{ "SET #w.#x = :a", "{\"#w\":\"m\",\"#x\":\"{a,b}\"}", "{\":a\":{\"S\":\"q\"}}" },
	{ "SET #p = :a", "{\"#p\":\"pk\"}", "{\":a\":{\"S\":\"B\"}}" },
	{ "SET nm = :a", NULL, "{\":a\":{\"S\":\"'); DROP TABLE x; --\"}}" },
	{ "SET #M.#z = :a", "{\"#M\":\"M\",\"#z\":\"0\"}", "{\":a\":{\"S\":\"z\"}}" },
	{ "SET #M.#L[5] = :a", "{\"#M\":\"M\",\"#L\":\"L\"}", "{\":a\":{\"S\":\"z\"}}" },
	{ "SET #M[0] = :a", "{\"#M\":\"M\"}", "{\":a\":{\"S\":\"z\"}}" },
	{ "REMOVE #M.#L[0], #M.#z", "{\"#M\":\"M\",\"#L\":\"L\",\"#z\":\"0\"}", NULL },
	{ "ADD #M.#S :a", "{\"#M\":\"M\",\"#S\":\"S\"}", "{\":a\":{\"SS\":[\"L\"]}}" },
	{ "DELETE #M.#S :a", "{\"#M\":\"M\",\"#S\":\"S\"}", "{\":a\":{\"SS\":[\"M\"]}}" },
	{ "SET l[999999999] = :a", NULL, "{\":a\":{\"S\":\"z\"}}" },
	{ "REMOVE l[999999999]", NULL, NULL },
	{ "SET el[3] = :a, el[1] = :b", NULL, "{\":a\":{\"S\":\"z\"},\":b\":{\"S\":\"y\"}}" },
};

static void
hand_cases(void)
{
	size_t i;
	char lbl[32];

	for (i = 0; i < sizeof(hand_conds) / sizeof(hand_conds[0]); i++) {
		const hcase *h = &hand_conds[i];

		snprintf(lbl, sizeof(lbl), "hand%zu", i);
		if (!run_case(false, h->expr, h->names, h->values, ITEM, NULL,
		    lbl))
			printf("# hand condition rejected by the parser: %s\n",
			    h->expr);
		run_case(false, h->expr, h->names, h->values, NULL, NULL, lbl);
	}
	for (i = 0; i < sizeof(hand_upds) / sizeof(hand_upds[0]); i++) {
		const hcase *h = &hand_upds[i];

		snprintf(lbl, sizeof(lbl), "hand%zu", i);
		if (!run_case(true, h->expr, h->names, h->values, ITEM, NULL,
		    lbl))
			printf("# hand update rejected by the parser: %s\n",
			    h->expr);
		run_case(true, h->expr, h->names, h->values, NULL,
		    "{\"pk\":{\"S\":\"K\"}}", lbl);
		run_case(true, h->expr, h->names, h->values, NULL, NULL, lbl);
	}
}

/* The 400 KB limit: an item just under it grows past it, or not. */
static void
size_cases(void)
{
	size_t n = 409600 - 2 - 20;	/* name "s" + value, room for more */
	char *big = malloc(n + 1), *item = NULL, *vals = NULL;

	memset(big, 'x', n);
	big[n] = '\0';
	if (asprintf(&item, "{\"s\":{\"S\":\"%s\"},\"pk\":{\"S\":\"A\"}}",
	    big) < 0 || asprintf(&vals, "{\":a\":{\"S\":\"%.40s\"}}", big) < 0)
		abort();
	run_case(true, "SET t = :a", NULL, vals, item, NULL, "size1");
	run_case(true, "SET t = :a REMOVE s", NULL, vals, item, NULL, "size2");
	run_case(true, "SET u = :b", NULL, "{\":b\":{\"S\":\"0123456789\"}}",
	    item, NULL, "size3");
	run_case(true, "SET l = :b", NULL, "{\":b\":{\"L\":[{\"S\":\"0123456789"
	    "01234\"}]}}", item, NULL, "size4");
	free(big);
	free(item);
	free(vals);
}

/* ---- random cases ---- */

static void
random_cases(int n)
{
	for (int i = 0; i < n; i++) {
		bool is_update = i % 2 == 1;
		json_t *item = rnd(8) == 0 ? NULL : gen_item(is_update);
		gen g;
		char *is = NULL, *ns = NULL, *vs = NULL, lbl[32];
		const char *key = NULL;

		memset(&g, 0, sizeof(g));
		g.names = json_object();
		g.values = json_object();
		g.item = item;
		if (is_update)
			g_update(&g);
		else
			g_cond(&g, 0);
		if (item != NULL)
			is = json_dumps(item, JSON_COMPACT);
		else if (is_update && rnd(2))
			key = "{\"pk\":{\"S\":\"k1\"}}";
		if (json_object_size(g.names) > 0)
			ns = json_dumps(g.names, JSON_COMPACT);
		if (json_object_size(g.values) > 0)
			vs = json_dumps(g.values, JSON_COMPACT);
		snprintf(lbl, sizeof(lbl), "rnd%d", i);
		run_case(is_update, g.buf, ns, vs, is, key, lbl);
		free(is);
		free(ns);
		free(vs);
		json_decref(item);
		json_decref(g.names);
		json_decref(g.values);
	}
}

/* An update whose row the WHERE clause rejects never raises, even when
 * every input is a constant (the error is raised by a VOLATILE function). */
static void
no_raise_case(void)
{
	json_t *jv = json_loads("{\":a\":{\"N\":\"1E+125\"}}", 0, NULL);
	it_error e = { 0 };
	it_params p;
	it_update *u = NULL;
	it_sql q;
	char *sql = NULL;
	PGresult *r = NULL;
	bool ok = false;

	it_sql_init(&q, 1);
	if (it_params_init(&p, NULL, jv, &e)) {
		if (it_parse_update("SET x = :a + :a", 15, &p, &u, &e) &&
		    it_sql_update(&q, u, "NULL", NULL, &e) &&
		    asprintf(&sql, "SELECT %s WHERE false", it_sql_text(&q)) > 0) {
			r = PQexecParams(pg, sql, (int)q.nparams, NULL,
			    (const char *const *)q.params, NULL, NULL, 0);
			ok = PQresultStatus(r) == PGRES_TUPLES_OK &&
			    PQntuples(r) == 0;
		}
		it_params_free(&p);
	}
	CHECK(ok, "an update in a rejected row raises nothing");
	PQclear(r);
	free(sql);
	it_sql_free(&q);
	it_update_free(u);
	it_error_clear(&e);
	json_decref(jv);
}

int
main(void)
{
	const char *url = getenv("ONCELEDGER_TEST_DATABASE_URL");
	const char *seed = getenv("ONCELEDGER_TEST_SEED");
	const char *cases = getenv("ONCELEDGER_TEST_CASES");
	char *err = NULL;
	int applied = 0, n = cases ? atoi(cases) : 20000;

	if (url == NULL || *url == '\0') {
		printf("# ONCELEDGER_TEST_DATABASE_URL is not set: skipped\n");
		return 77;
	}
	if (seed != NULL)
		rng_state = strtoull(seed, NULL, 10) * 2654435761ULL +
		    88172645463325252ULL;
	pg = PQconnectdb(url);
	if (PQstatus(pg) != CONNECTION_OK) {
		printf("not ok 1 - connect: %s", PQerrorMessage(pg));
		PQfinish(pg);
		return 1;
	}
	if (!mig_apply(pg, &applied, &err)) {
		printf("not ok 1 - migrations: %s\n", err ? err : "?");
		free(err);
		PQfinish(pg);
		return 1;
	}
	PQclear(PQexec(pg, "SET client_min_messages = warning"));
	printf("# seed %llu, %d random cases\n", (unsigned long long)rng_state, n);
	hand_cases();
	size_cases();
	no_raise_case();
	random_cases(n);
	printf("# compared %d conditions and %d updates (%d expecting an error),"
	    " each in 2 modes; %d generated expressions rejected by the parser\n",
	    ncond, nupd, nerr, skipped);
	for (size_t i = 0; i < 64 && seen[i].what != NULL; i++) {
		printf("#   %6d  %s\n", seen[i].n, seen[i].what);
		free(seen[i].what);
	}
	PQfinish(pg);
	return it_test_done();
}
