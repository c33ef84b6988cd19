/* idempotency.c — §9 idempotency as a service: validation and answers; the
 * records live in src/idem/service.c. */
#include "api/app.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/validate.h"

static void answer(idems_status st, json_t *obj, int retry_after, void *arg)
{
	http_req *r = arg;
	char ra[16];
	switch (st) {
	case IDEMS_CLAIMED:
		api_result_json(r, 201, json_incref(obj));
		return;
	case IDEMS_COMPLETED:
	case IDEMS_OK:
		if (obj == NULL)
			api_result(r, 204, NULL, "", 0);
		else
			api_result_json(r, 200, json_incref(obj));
		return;
	case IDEMS_IN_USE:
		snprintf(ra, sizeof(ra), "%d", retry_after > 0 ? retry_after : 1);
		http_req_add_header(r, "Retry-After", ra);
		problem_send(r, 409, "idempotency_key_in_use", "another caller holds a live lease on this key", NULL);
		return;
	case IDEMS_MISMATCH:
		problem_send(r, 422, "idempotency_key_reused", "this key was claimed with another fingerprint", NULL);
		return;
	case IDEMS_LEASE_LOST:
		problem_send(r, 409, "lease_lost", "this lease token does not hold the key (expired and taken over, released or completed)",
			     NULL);
		return;
	case IDEMS_NOT_FOUND:
		problem_send(r, 404, "not_found", "no record for this idempotency key", NULL);
		return;
	case IDEMS_UNAVAILABLE:
		problem_unavailable(r, api_worker(r)->app->cfg->retry_after_s, "the database is unavailable");
		return;
	case IDEMS_FAILED:
	default:
		problem_send(r, 500, "internal", "internal error; see the server log with this request id", NULL);
		return;
	}
}

/* A key: 1-255 bytes of valid UTF-8 without control characters. */
static bool key_ok(http_req *r, const char *key)
{
	/* A path parameter is percent-decoded bytes: it must still be text. */
	bool ok = v_text_ok(key, IDEM_KEY_MAX);
	if (!ok)
		problem_send(r, 400, "invalid_request", "'key' must be 1-255 characters of UTF-8 without control characters",
			     json_pack("{s:s}", "field", "key"));
	return ok;
}

static const char *tenant(http_req *r)
{
	return api_ctx(r)->who.tenant;
}

void api_idem_claim(http_req *r)
{
	const json_t *b = api_ctx(r)->body;
	static const char *const fields[] = {"key", "fingerprint", "lease_seconds", "ttl_seconds", NULL};
	const char *fp = NULL;
	int64_t lease, ttl;
	json_t *kj = json_object_get(b, "key");
	if (!v_only_fields(r, b, fields))
		return;
	if (!json_is_string(kj) || strlen(json_string_value(kj)) != json_string_length(kj)) {
		problem_send(r, 400, "invalid_request", "'key' is required: a string", json_pack("{s:s}", "field", "key"));
		return;
	}
	if (!key_ok(r, json_string_value(kj)) || !v_opt_string(r, b, "fingerprint", 128, &fp) ||
	    !v_int(r, b, "lease_seconds", false, 1, 3600, 30, &lease) ||
	    !v_int(r, b, "ttl_seconds", false, 1, 2592000, 86400, &ttl))
		return;
	idems_claim(api_worker(r)->items, tenant(r), json_string_value(kj), fp, (int)lease, (int)ttl, answer, r);
}

void api_idem_get(http_req *r)
{
	if (!key_ok(r, api_param(r, 0)))
		return;
	idems_get(api_worker(r)->items, tenant(r), api_param(r, 0), answer, r);
}

static bool token_of(http_req *r, const char **out)
{
	json_t *t = json_object_get(api_ctx(r)->body, "lease_token");
	if (!json_is_string(t) || json_string_length(t) == 0 || json_string_length(t) > 128) {
		problem_send(r, 400, "invalid_request", "'lease_token' is required: the token the claim returned",
			     json_pack("{s:s}", "field", "lease_token"));
		return false;
	}
	*out = json_string_value(t);
	return true;
}

void api_idem_complete(http_req *r)
{
	const json_t *b = api_ctx(r)->body;
	static const char *const fields[] = {"lease_token", "response", NULL};
	static const char *const rfields[] = {"status", "headers", "body", NULL};
	const char *tok;
	int64_t status;
	if (!key_ok(r, api_param(r, 0)) || !v_only_fields(r, b, fields) || !token_of(r, &tok))
		return;
	json_t *resp = json_object_get(b, "response");
	if (!json_is_object(resp)) {
		problem_send(r, 400, "invalid_request", "'response' is required: {\"status\", \"headers\"?, \"body\"?}",
			     json_pack("{s:s}", "field", "response"));
		return;
	}
	if (!v_only_fields(r, resp, rfields) || !v_int(r, resp, "status", true, 100, 599, 0, &status))
		return;
	json_t *h = json_object_get(resp, "headers");
	if (h != NULL) {
		bool ok = json_is_object(h);
		const char *name;
		json_t *v;
		json_object_foreach(h, name, v)
			ok = ok && json_is_string(v);
		if (!ok) {
			problem_send(r, 400, "invalid_request", "'response.headers' must be an object of strings",
				     json_pack("{s:s}", "field", "response.headers"));
			return;
		}
	}
	idems_complete(api_worker(r)->items, tenant(r), api_param(r, 0), tok, resp, answer, r);
}

static void released(idems_status st, json_t *obj, int retry_after, void *arg)
{
	(void)obj;
	answer(st, NULL, retry_after, arg);
}

void api_idem_release(http_req *r)
{
	static const char *const fields[] = {"lease_token", NULL};
	const char *tok;
	if (!key_ok(r, api_param(r, 0)) || !v_only_fields(r, api_ctx(r)->body, fields) || !token_of(r, &tok))
		return;
	idems_release(api_worker(r)->items, tenant(r), api_param(r, 0), tok, released, r);
}
