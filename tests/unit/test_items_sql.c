/* Unit tests of the SQL compilation of expressions (src/items/sql*.c)
 * without a database: the SQL text and parameters of conditions and updates,
 * parameter numbering from a base and across fragments, request data kept
 * out of the text, compile-time folding of type mismatches, eval.c's
 * application order of update actions, and the U+0000 refusal. The
 * semantics are checked on PostgreSQL by tests/db/test_items_sql_diff.c. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "items/sql.h"
#include "items_test.h"

/* Parses expr (a condition, or an update when upd) with the given names and
 * values (JSON text or NULL) and compiles it into q (base 4, item column
 * i.item); returns false and prints the message on failure, leaving it in
 * *msg when msg is not NULL. */
static bool
compile(bool upd, const char *expr, const char *names, const char *values,
    const char *key, it_sql *q, char **msg)
{
	json_t *jn = names ? json_loads(names, JSON_ALLOW_NUL, NULL) : NULL;
	json_t *jv = values ? json_loads(values, JSON_ALLOW_NUL, NULL) : NULL;
	it_error e = { 0 };
	it_params p;
	it_node *n = NULL;
	it_update *u = NULL;
	bool ok = false;

	if (msg != NULL)
		*msg = NULL;
	if (it_params_init(&p, jn, jv, &e)) {
		ok = upd ? it_parse_update(expr, strlen(expr), &p, &u, &e) &&
		    it_sql_update(q, u, "i.item", key, &e) :
		    it_parse_condition(IT_EXPR_CONDITION, expr, strlen(expr), &p,
		    &n, &e) && it_sql_condition(q, n, "i.item", &e);
		it_params_free(&p);
	}
	if (!ok) {
		printf("# %s: %s\n", expr, e.msg ? e.msg : "?");
		if (msg != NULL && e.msg != NULL)
			*msg = strdup(e.msg);
	}
	it_node_free(n);
	it_update_free(u);
	it_error_clear(&e);
	json_decref(jn);
	json_decref(jv);
	return ok;
}

/* "$n::type = value" lines of every parameter, for compact checks. */
static char *
params_str(const it_sql *q)
{
	size_t cap = 1, len = 0;
	char *s;

	for (size_t i = 0; i < q->nparams; i++)
		cap += strlen(q->params[i]) + strlen(q->types[i]) + 32;
	s = malloc(cap);
	if (s == NULL)
		return NULL;
	s[0] = '\0';
	for (size_t i = 0; i < q->nparams; i++)
		len += (size_t)snprintf(s + len, cap - len, "%s$%d::%s=%s",
		    i ? " " : "", q->base + (int)i, q->types[i], q->params[i]);
	return s;
}

/* True when every parameter is mentioned in the text exactly with its
 * type (PostgreSQL cannot type a parameter the text never mentions). */
static bool
params_all_used(const it_sql *q)
{
	char ref[64];
	const char *t = it_sql_text(q), *at;

	for (size_t i = 0; i < q->nparams; i++) {
		snprintf(ref, sizeof(ref), "$%d::%s", q->base + (int)i,
		    q->types[i]);
		at = strstr(t, ref);
		if (at == NULL)
			return false;
	}
	return true;
}

static void
test_condition_shapes(void)
{
	it_sql q;
	char *ps;

	it_sql_init(&q, 4);
	CHECK(compile(false, "balance >= :amt", NULL,
	    "{\":amt\":{\"N\":\"1.50\"}}", NULL, &q, NULL), "balance >= :amt");
	CHECK_STR(it_sql_text(&q), "coalesce(((((i.item)::jsonb #> "
	    "$4::text[]))->>'N')::numeric >= $5::numeric, false)",
	    "N comparison with a constant is numeric");
	ps = params_str(&q);
	CHECK_STR(ps, "$4::text[]={\"balance\"} $5::numeric=1.5",
	    "path and canonical number parameters");
	free(ps);
	CHECK(it_sql_next_param(&q) == 6, "next parameter after the last");
	it_sql_free(&q);

	it_sql_init(&q, 4);
	CHECK(compile(false, "a.b[2].#c = :v OR a.b[2].#c < :w",
	    "{\"#c\":\"we\\\"ird,{x}\\\\\"}",
	    "{\":v\":{\"S\":\"x\"},\":w\":{\"S\":\"y\"}}", NULL, &q, NULL),
	    "nested path");
	CHECK_STR(it_sql_text(&q), "(coalesce(((i.item)::jsonb #> $4::text[]) "
	    "= $5::jsonb, false) OR coalesce(((((i.item)::jsonb #> "
	    "$4::text[]))->>'S') COLLATE \"C\" < $6::text, false))",
	    "= by jsonb equality, < on S bytewise, the path parameter shared");
	ps = params_str(&q);
	CHECK_STR(ps, "$4::text[]={\"a\",\"M\",\"b\",\"L\",\"2\",\"M\","
	    "\"we\\\"ird,{x}\\\\\"} $5::jsonb={\"S\":\"x\"} $6::text=y",
	    "path elements quoted in the array literal, type tags between");
	free(ps);
	CHECK(strstr(it_sql_text(&q), "ird") == NULL,
	    "names never reach the text");
	it_sql_free(&q);

	it_sql_init(&q, 1);
	CHECK(compile(false, "a < b AND NOT attribute_exists(#c)",
	    "{\"#c\":\"c\"}", NULL, NULL, &q, NULL), "path vs path");
	CHECK_STR(it_sql_text(&q), "(coalesce(ol_it_cmp(((i.item)::jsonb #> "
	    "$1::text[]), ((i.item)::jsonb #> $2::text[])) < 0, false) AND "
	    "(NOT (((i.item)::jsonb #> $3::text[]) IS NOT NULL)))",
	    "run-time types go through ol_it_cmp; NOT of a two-valued term");
	it_sql_free(&q);

	it_sql_init(&q, 1);
	CHECK(compile(false, "a BETWEEN :x AND :y AND b IN (:x, c, size(d))",
	    NULL, "{\":x\":{\"N\":\"1\"},\":y\":{\"N\":\"5\"}}", NULL, &q,
	    NULL), "BETWEEN and IN");
	CHECK_STR(it_sql_text(&q), "((coalesce(((((i.item)::jsonb #> "
	    "$1::text[]))->>'N')::numeric >= $2::numeric, false) AND "
	    "coalesce(((((i.item)::jsonb #> $1::text[]))->>'N')::numeric <= "
	    "$3::numeric, false)) AND coalesce(((i.item)::jsonb #> $4::text[]) "
	    "IN ($5::jsonb, ((i.item)::jsonb #> $6::text[]), "
	    "ol_it_size_av(((i.item)::jsonb #> $7::text[]))), false))",
	    "BETWEEN as two comparisons, IN over AttributeValues");
	it_sql_free(&q);

	it_sql_init(&q, 1);
	CHECK(compile(false, "begins_with(a, :p) AND contains(a, :p) AND "
	    "attribute_type(a, :t) AND attribute_type(a, b)", NULL,
	    "{\":p\":{\"S\":\"ab\"},\":t\":{\"S\":\"SS\"}}", NULL, &q, NULL),
	    "functions");
	CHECK_STR(it_sql_text(&q), "(((coalesce(starts_with((((i.item)::jsonb "
	    "#> $1::text[])->>'S') COLLATE \"C\", $2::text), false) AND "
	    "coalesce(ol_it_contains(((i.item)::jsonb #> $1::text[]), "
	    "$3::jsonb), false)) AND coalesce(((i.item)::jsonb #> $1::text[]) "
	    "? $4::text, false)) AND coalesce(ol_it_is_type(((i.item)::jsonb "
	    "#> $1::text[]), ((i.item)::jsonb #> $5::text[])), false))",
	    "begins_with, contains, attribute_type");
	it_sql_free(&q);
}

/* Type mismatches known before evaluation fold to constants, and leave no
 * parameter behind. */
static void
test_folding(void)
{
	static const struct {
		const char *expr, *values, *want;
	} cases[] = {
		{ "size(a) = :s", "{\":s\":{\"S\":\"x\"}}", "false" },
		{ "size(a) <> :s", "{\":s\":{\"S\":\"x\"}}", "true" },
		{ "a < :b", "{\":b\":{\"BOOL\":true}}", "false" },
		{ ":a <= size(b)", "{\":a\":{\"S\":\"1\"}}", "false" },
		{ "begins_with(a, :n)", "{\":n\":{\"B\":\"AA==\"}}", NULL },
		{ "attribute_type(a, :t)", "{\":t\":{\"S\":\"L\"}}", NULL },
	};
	it_sql q;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		it_sql_init(&q, 1);
		CHECK(compile(false, cases[i].expr, NULL, cases[i].values, NULL,
		    &q, NULL), cases[i].expr);
		if (cases[i].want != NULL) {
			CHECK_STR(it_sql_text(&q), cases[i].want, cases[i].expr);
			CHECK(q.nparams == 0, "no parameter left unused");
		}
		CHECK(params_all_used(&q), "every parameter is in the text");
		it_sql_free(&q);
	}
}

static void
test_update_shapes(void)
{
	it_sql q;
	char *ps;

	it_sql_init(&q, 3);
	CHECK(compile(true, "SET balance = balance - :amt", NULL,
	    "{\":amt\":{\"N\":\"100\"}}", NULL, &q, NULL), "conditional debit");
	/* SET a = a - :n is the counter form: one jsonb_set with exact
	 * arithmetic under a range guard, one call of ol_it_set_counter
	 * (sql/008: every other case) as its ELSE. */
	CHECK_STR(it_sql_text(&q), "(CASE WHEN pg_column_size(coalesce((i.item)::jsonb, '{}'::jsonb)) < "
	    "409000 AND coalesce(length(((i.item)::jsonb #> $3::text[]) ->> 'N') "
	    "<= 19, false) THEN jsonb_set(coalesce((i.item)::jsonb, '{}'::jsonb),"
	    " $3::text[], jsonb_build_object('N', trim_scale((((i.item)::jsonb #>"
	    " $3::text[]) ->> 'N')::numeric - (($4::jsonb) ->> 'N')::numeric)::te"
	    "xt), true) ELSE ol_it_set_counter(coalesce((i.item)::jsonb, '{}'::js"
	    "onb), $3::text[], $4::jsonb, true, 23) END)",
	    "SET with -: one step, operands read from the old item");
	it_sql_free(&q);

	/* Application order: SET/ADD/DELETE by ascending last index (ties in
	 * expression order), then REMOVE by descending index; the innermost
	 * step is applied first. Ranks are positions in the expression. */
	it_sql_init(&q, 3);
	CHECK(compile(true, "REMOVE l[0], l[2] SET l[5] = :a, l[1] = :b "
	    "ADD n :n DELETE s :s", NULL, "{\":a\":{\"N\":\"1\"},\":b\":{\"N\":"
	    "\"2\"},\":n\":{\"N\":\"3\"},\":s\":{\"SS\":[\"x\"]}}", "$2", &q,
	    NULL), "every clause");
	CHECK_STR(it_sql_text(&q), "ol_it_update_end(ol_it_act(ol_it_act("
	    "ol_it_act(ol_it_act(ol_it_act(ol_it_act(coalesce((i.item)::jsonb, "
	    "($2)::jsonb, '{}'::jsonb), 'P', $3::text[], ol_it_add_value("
	    "(i.item)::jsonb #> $3::text[], $4::jsonb), 4), 'D', $5::text[], "
	    "ol_it_delete_value((i.item)::jsonb #> $5::text[], $6::jsonb), 5), "
	    "'P', $7::text[], $8::jsonb, 3), 'P', $9::text[], $10::jsonb, 2), "
	    "'R', $11::text[], NULL::jsonb, 1), 'R', $12::text[], NULL::jsonb, "
	    "0))", "eval.c's order; the key item starts a missing item");
	ps = params_str(&q);
	CHECK_STR(ps, "$3::text[]={\"n\"} $4::jsonb={\"N\":\"3\"} "
	    "$5::text[]={\"s\"} $6::jsonb={\"SS\":[\"x\"]} "
	    "$7::text[]={\"l\",\"L\",\"1\"} $8::jsonb={\"N\":\"2\"} "
	    "$9::text[]={\"l\",\"L\",\"5\"} $10::jsonb={\"N\":\"1\"} "
	    "$11::text[]={\"l\",\"L\",\"2\"} $12::text[]={\"l\",\"L\",\"0\"}",
	    "update parameters");
	free(ps);
	it_sql_free(&q);

	it_sql_init(&q, 1);
	CHECK(compile(true, "SET a = if_not_exists(a, :z), b = list_append(b, "
	    ":l)", NULL, "{\":z\":{\"N\":\"0\"},\":l\":{\"L\":[]}}", NULL, &q,
	    NULL), "functions in SET");
	CHECK_STR(it_sql_text(&q), "ol_it_update_end(ol_it_act(ol_it_act("
	    "coalesce((i.item)::jsonb, '{}'::jsonb), 'P', $1::text[], coalesce("
	    "(i.item)::jsonb #> $1::text[], $2::jsonb), 0), 'P', $3::text[], "
	    "ol_it_list_append(ol_it_need((i.item)::jsonb #> $3::text[]), "
	    "$4::jsonb), 1))", "if_not_exists and list_append");
	it_sql_free(&q);
}

/* Several fragments in one statement: the caller's parameters first, then
 * the condition's, then the update's, equal values shared. */
static void
test_fragments(void)
{
	it_error e = { 0 };
	it_sql q;
	char *ps;

	it_sql_init(&q, 3);
	CHECK(it_sql_append(&q, "UPDATE items i SET item = "), "append");
	CHECK(compile(true, "SET bal = bal - :amt", NULL,
	    "{\":amt\":{\"N\":\"5\"}}", NULL, &q, NULL), "update fragment");
	CHECK(it_sql_append(&q, " WHERE i.pk = $1 AND i.tenant = $2 AND "),
	    "append");
	CHECK(compile(false, "bal >= :amt", NULL, "{\":amt\":{\"N\":\"5\"}}",
	    NULL, &q, NULL), "condition fragment");
	CHECK(it_sql_append(&q, " AND ") && it_sql_param(&q, "text", "x", 1,
	    &e), "it_sql_param");
	CHECK_STR(it_sql_text(&q), "UPDATE items i SET item = (CASE WHEN pg_column_size(coalesce((i.item"
	    ")::jsonb, '{}'::jsonb)) < 409000 AND coalesce(length(((i.item)::json"
	    "b #> $3::text[]) ->> 'N') <= 19, false) THEN jsonb_set(coalesce((i.i"
	    "tem)::jsonb, '{}'::jsonb), $3::text[], jsonb_build_object('N', trim_"
	    "scale((((i.item)::jsonb #> $3::text[]) ->> 'N')::numeric - (($4::jso"
	    "nb) ->> 'N')::numeric)::text), true) ELSE ol_it_set_counter(coalesce"
	    "((i.item)::jsonb, '{}'::jsonb), $3::text[], $4::jsonb, true, 19) END"
	    ") WHERE i.pk = $1 AND i.tenant = $2 AND coale"
	    "sce(((((i.item)::jsonb #> $3::text[]))->>'N')::numeric >= $5::numeri"
	    "c, false) AND $6::text",
	    "one statement");
	ps = params_str(&q);
	CHECK_STR(ps, "$3::text[]={\"bal\"} $4::jsonb={\"N\":\"5\"} "
	    "$5::numeric=5 $6::text=x", "numbering continues, equal values "
	    "of one type shared");
	free(ps);
	CHECK(params_all_used(&q), "every parameter is in the text");
	it_sql_free(&q);
	it_error_clear(&e);
}

/* Request data only ever travels as parameters. */
static void
test_no_request_data_in_text(void)
{
	static const char *const exprs[] = {
		"#w = :v", "contains(#w, :v)", "begins_with(#w, :v)",
		"#w.#w[3] IN (:v, :v2)", "size(#w) > :n", "attribute_type(#w, :t)",
	};
	static const char *const updates[] = {
		"SET #w = :v", "SET #w.#w = :v2", "ADD #w :n", "DELETE #w :ss",
		"REMOVE #w[1]", "SET #w = if_not_exists(#w, :v)",
	};
	const char *names = "{\"#w\":\"'); DROP TABLE t; --\"}";
	const char *values = "{\":v\":{\"S\":\"' OR 1=1 --\"},\":v2\":{\"B\":"
	    "\"JykgT1I=\"},\":n\":{\"N\":\"7\"},\":t\":{\"S\":\"S\"},\":ss\":"
	    "{\"SS\":[\"$1\"]}}";
	it_sql q;
	char name[128];

	for (size_t i = 0; i < 12; i++) {
		bool upd = i >= 6;
		const char *x = upd ? updates[i - 6] : exprs[i];

		it_sql_init(&q, 1);
		CHECK(compile(upd, x, names, values, NULL, &q, NULL), x);
		snprintf(name, sizeof(name), "%s: no request data in the text",
		    x);
		CHECK(strstr(it_sql_text(&q), "DROP") == NULL &&
		    strstr(it_sql_text(&q), "1=1") == NULL &&
		    strstr(it_sql_text(&q), "\"$1\"") == NULL, name);
		CHECK(params_all_used(&q), "every parameter is in the text");
		it_sql_free(&q);
	}
}

static void
test_nul(void)
{
	it_sql q;
	char *msg;
	const char *want = "One or more parameter values were invalid: "
	    "attribute names and values containing U+0000 are not supported";

	it_sql_init(&q, 1);
	CHECK(!compile(false, "a = :v", NULL, "{\":v\":{\"S\":\"a\\u0000b\"}}",
	    NULL, &q, &msg), "U+0000 in a value is refused");
	CHECK_STR(msg, want, "U+0000 message");
	free(msg);
	it_sql_free(&q);
	it_sql_init(&q, 1);
	CHECK(!compile(true, "SET #n = :v", "{\"#n\":\"a\\u0000\"}",
	    "{\":v\":{\"S\":\"x\"}}", NULL, &q, &msg),
	    "U+0000 in a name is refused");
	CHECK_STR(msg, want, "U+0000 message");
	free(msg);
	it_sql_free(&q);
}

int
main(void)
{
	test_condition_shapes();
	test_folding();
	test_update_shapes();
	test_fragments();
	test_no_request_data_in_text();
	test_nul();
	return it_test_done();
}
