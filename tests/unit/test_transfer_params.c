/* test_transfer_params.c — the parameters a reused transfer id is compared
 * on (src/ledger/transfers.c, lg_transfer_params), written by hand, are
 * byte for byte what jansson writes of the same object with JSON_COMPACT |
 * JSON_SORT_KEYS: stored parameters are compared as text. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "ledger/ledger_int.h"
#include "tap.h"

/* The reference: the object built and dumped by jansson. */
static char *reference(const lg_transfer_new *t)
{
	json_t *empty = json_object();
	json_t *p = json_pack("{s:s, s:s?, s:s?, s:I, s:s?, s:s?, s:O}", "kind", t->kind ? t->kind : "transfer", "from", t->from,
			      "to", t->to, "amount", (json_int_t)t->amount, "currency", t->currency, "description",
			      t->description, "metadata", t->metadata ? t->metadata : empty);
	json_decref(empty);
	char *s = p ? json_dumps(p, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
	json_decref(p);
	return s;
}

static void same(const lg_transfer_new *t, const char *name)
{
	char *got = lg_transfer_params(t), *want = reference(t);
	CHECK_STR(got, want, name);
	free(got);
	free(want);
}

int main(void)
{
	lg_transfer_new t = {.from = "acc_a", .to = "acc_b", .amount = 1500, .currency = "EUR"};
	same(&t, "a plain transfer (kind, description and metadata omitted)");
	t.kind = "credit";
	t.from = NULL;
	t.currency = NULL;
	t.amount = INT64_MAX;
	same(&t, "a credit: from and currency null, the largest amount");
	t.kind = "debit";
	t.from = "acc_a";
	t.to = NULL;
	t.amount = 1;
	same(&t, "a debit: to null");

	/* Every ASCII byte, and UTF-8 of 2, 3 and 4 bytes (U+00E9, U+2028, U+1F600). */
	char all[200];
	size_t n = 0;
	for (int c = 1; c < 128; c++)
		all[n++] = (char)c;
	static const char utf8[] = "\xc3\xa9 \xe2\x80\xa8 \xf0\x9f\x98\x80 /</script>";
	memcpy(all + n, utf8, sizeof(utf8));
	t.description = all;
	same(&t, "a description with every ASCII byte and multi-byte UTF-8");
	t.description = "";
	same(&t, "an empty description");
	t.description = "\"quoted\" \\ back\\slash\\";
	t.id = "tr_1";
	same(&t, "quotes and backslashes (the id is not a parameter)");

	json_t *meta = json_loads("{\"z\":1,\"a\":{\"y\":[1,2.5,\"x\"],\"b\":null},\"m\":\"\\u0001\\n\\u00e9\",\"n\":true}", 0, NULL);
	t.metadata = meta;
	same(&t, "metadata, nested objects with their keys sorted");
	json_t *empty = json_object();
	t.metadata = empty;
	same(&t, "metadata {} spelled out");
	json_decref(meta);
	json_decref(empty);
	return it_test_done();
}
