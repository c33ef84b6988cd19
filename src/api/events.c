/* events.c — §8 GET /v1/events (replay from the outbox) and
 * GET /v1/events/signing-key (docs/events.md). */
#include "api/app.h"

#include <stdlib.h>
#include <string.h>

#include "api/validate.h"
#include "events/envelope.h"
#include "events/keys.h"
#include "events/read.h"

static void page_read(const db_result *err, json_t *page, void *arg)
{
	http_req *r = arg;
	if (err != NULL) {
		api_db_problem(r, err);
		return;
	}
	api_result_json(r, 200, json_incref(page));
}

void api_events(http_req *r)
{
	/* `after` is a sequence; `cursor` (the next_cursor of a page) is the
	 * same thing under the list convention's name. */
	char *after = v_query(r, "after"), *cursor = v_query(r, "cursor");
	const char *pos = after != NULL ? after : cursor;
	const char *field = after != NULL ? "after" : "cursor";
	uint64_t txid = 0;
	int n = 0;
	bool ok = pos == NULL || ev_sequence_parse(pos, &txid, &n);
	bool both = after != NULL && cursor != NULL && strcmp(after, cursor) != 0;
	free(after);
	free(cursor);
	if (both) {
		problem_send(r, 400, "invalid_request", "'after' and 'cursor' disagree: pass one", json_pack("{s:s}", "field", "cursor"));
		return;
	}
	if (!ok) {
		problem_send(r, 400, "invalid_request", "must be a sequence: decimal digits", json_pack("{s:s}", "field", field));
		return;
	}
	int limit;
	if (!v_limit(r, &limit))
		return;
	ev_read(api_worker(r)->db, api_ctx(r)->who.tenant, txid, n, limit, page_read, r);
}

void api_events_signing_key(http_req *r)
{
	ev_keys *keys = api_worker(r)->app->keys;
	char *kid = v_query(r, "kid");
	char kid_out[EV_KID_LEN], pub[EV_PUB_B64_LEN];
	bool found = keys != NULL && ev_keys_public(keys, kid, kid_out, pub);
	free(kid);
	if (!found) {
		problem_send(r, 404, "not_found", "no signing key with this kid", NULL);
		return;
	}
	api_result_json(r, 200, json_pack("{s:s, s:s, s:s}", "kid", kid_out, "alg", "ed25519", "public_key", pub));
}
