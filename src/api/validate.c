/* validate.c — request field checks with one clear 400 each. */
#include "api/validate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/http.h>

#include "api/app.h"
#include "http/problem.h"

static bool bad(http_req *r, const char *field, const char *what)
{
	char detail[200];
	snprintf(detail, sizeof(detail), "'%s' %s", field, what);
	json_t *ext = json_pack("{s:s}", "field", field);
	if (api_ctx(r)->v_index > 0)
		json_object_set_new(ext, "index", json_integer(api_ctx(r)->v_index - 1));
	problem_send(r, 400, "invalid_request", detail, ext);
	return false;
}

bool v_only_fields(http_req *r, const json_t *body, const char *const *allowed)
{
	const char *name;
	json_t *v;
	json_object_foreach((json_t *)body, name, v)
	{
		bool ok = false;
		for (const char *const *a = allowed; *a != NULL && !ok; a++)
			ok = strcmp(*a, name) == 0;
		if (!ok) {
			char field[80];
			util_strlcpy(field, name, sizeof(field));
			return bad(r, field, "is not a field of this request");
		}
	}
	return true;
}

/* '@' (the world's accounts) is not an id character. */
static bool id_ok(const char *s)
{
	return util_id_ok(s, strlen(s));
}

bool v_is_id(const char *s)
{
	return s != NULL && id_ok(s);
}

bool v_opt_id(http_req *r, const json_t *body, const char *field, const char **out)
{
	*out = NULL;
	json_t *v = json_object_get(body, field);
	if (v == NULL)
		return true;
	if (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v) || !id_ok(json_string_value(v)))
		return bad(r, field, "must be 1-64 characters of [A-Za-z0-9_.:-], not starting with '@'");
	*out = json_string_value(v);
	return true;
}

bool v_path_id(http_req *r, const char *id, const char *not_found_code)
{
	if (id != NULL && id_ok(id))
		return true;
	/* No object can have this id: it is simply not found. */
	problem_send(r, 404, not_found_code, "no such object", NULL);
	return false;
}

bool v_currency(http_req *r, const json_t *body, const char *field, const char **out)
{
	json_t *v = json_object_get(body, field);
	if (v == NULL)
		return bad(r, field, "is required");
	const char *s = json_string_value(v);
	if (s == NULL || json_string_length(v) != 3 || s[0] < 'A' || s[0] > 'Z' || s[1] < 'A' || s[1] > 'Z' || s[2] < 'A' ||
	    s[2] > 'Z')
		return bad(r, field, "must be three uppercase ASCII letters");
	*out = s;
	return true;
}

static bool no_controls(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return false;
	return true;
}

bool v_opt_string(http_req *r, const json_t *body, const char *field, size_t max, const char **out)
{
	*out = NULL;
	json_t *v = json_object_get(body, field);
	if (v == NULL || json_is_null(v))
		return true;
	if (!json_is_string(v))
		return bad(r, field, "must be a string");
	const char *s = json_string_value(v);
	size_t n = json_string_length(v);
	if (n == 0 || n > max || strlen(s) != n)
		return bad(r, field, "has a wrong length or contains NUL");
	if (!no_controls(s, n))
		return bad(r, field, "must not contain control characters");
	*out = s;
	return true;
}

bool v_int(http_req *r, const json_t *body, const char *field, bool required, int64_t min, int64_t max, int64_t def,
	   int64_t *out)
{
	json_t *v = json_object_get(body, field);
	if (v == NULL) {
		if (required)
			return bad(r, field, "is required");
		*out = def;
		return true;
	}
	if (!json_is_integer(v))
		return bad(r, field, "must be an integer");
	json_int_t x = json_integer_value(v);
	if (x < min || x > max) {
		char what[96];
		snprintf(what, sizeof(what), "must be between %lld and %lld", (long long)min, (long long)max);
		return bad(r, field, what);
	}
	*out = x;
	return true;
}

bool v_metadata(http_req *r, const json_t *body, const json_t **out)
{
	*out = NULL;
	json_t *v = json_object_get(body, "metadata");
	if (v == NULL)
		return true;
	if (!json_is_object(v))
		return bad(r, "metadata", "must be a JSON object");
	char *text = json_dumps(v, JSON_COMPACT);
	size_t n = text != NULL ? strlen(text) : SIZE_MAX;
	free(text);
	if (n > 4096)
		return bad(r, "metadata", "must be at most 4 KiB serialized");
	*out = v;
	return true;
}

char *v_query(http_req *r, const char *name)
{
	if (r->query == NULL)
		return NULL;
	size_t nlen = strlen(name);
	for (const char *p = r->query; *p != '\0';) {
		size_t len = strcspn(p, "&");
		if (len > nlen && strncmp(p, name, nlen) == 0 && p[nlen] == '=') {
			char *raw = strndup(p + nlen + 1, len - nlen - 1);
			size_t n = 0;
			char *out = raw != NULL ? evhttp_uridecode(raw, 1, &n) : NULL;
			free(raw);
			/* A %00 would end the C string early and let a truncated
			 * value through: it becomes U+0001, which every check of a
			 * parameter refuses. */
			for (size_t i = 0; out != NULL && i < n; i++)
				if (out[i] == '\0')
					out[i] = '\x01';
			return out;
		}
		p += len;
		if (*p == '&')
			p++;
	}
	return NULL;
}

bool v_text_ok(const char *s, size_t max)
{
	size_t n = s != NULL ? strlen(s) : 0;
	if (n < 1 || n > max || !no_controls(s, n))
		return false;
	/* jansson refuses invalid UTF-8, overlong forms and surrogates */
	json_t *text = json_stringn(s, n);
	json_decref(text);
	return text != NULL;
}

bool v_query_text(http_req *r, const char *name, size_t max, char **out)
{
	char *s = v_query(r, name);
	*out = NULL;
	if (s == NULL)
		return true;
	if (!v_text_ok(s, max)) {
		free(s);
		char what[96];
		snprintf(what, sizeof(what), "must be 1-%zu bytes of UTF-8 without control characters", max);
		return bad(r, name, what);
	}
	*out = s;
	return true;
}

bool v_limit(http_req *r, int *out)
{
	*out = 100;
	char *s = v_query(r, "limit");
	if (s == NULL)
		return true;
	long long x;
	bool ok = util_parse_ll(s, 1, 1000, &x);
	free(s);
	if (!ok)
		return bad(r, "limit", "must be an integer between 1 and 1000");
	*out = (int)x;
	return true;
}

static bool currency_ok(const char *s)
{
	return strlen(s) == 3 && s[0] >= 'A' && s[0] <= 'Z' && s[1] >= 'A' && s[1] <= 'Z' && s[2] >= 'A' && s[2] <= 'Z';
}

bool v_account_ref(http_req *r, const json_t *body, const char *field, const char **out)
{
	json_t *v = json_object_get(body, field);
	if (v == NULL)
		return bad(r, field, "is required");
	const char *s = json_string_value(v);
	if (s == NULL || strlen(s) != json_string_length(v) ||
	    !(id_ok(s) || (strncmp(s, "@world:", 7) == 0 && currency_ok(s + 7))))
		return bad(r, field, "must be an account id or @world:<CUR>");
	*out = s;
	return true;
}

/* RFC 3339: YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM); a '+' that a query
 * string turned into a space is accepted as '+'. */
static bool parse_rfc3339(const char *s, int64_t *out_us)
{
	int Y, M, D, h, m, sec, n = 0;
	if (sscanf(s, "%4d-%2d-%2d%n", &Y, &M, &D, &n) != 3 || n != 10 || (s[10] != 'T' && s[10] != 't' && s[10] != ' '))
		return false;
	s += 11;
	if (sscanf(s, "%2d:%2d:%2d%n", &h, &m, &sec, &n) != 3 || n != 8)
		return false;
	s += 8;
	int64_t frac = 0;
	if (*s == '.') {
		int digits = 0;
		s++;
		while (*s >= '0' && *s <= '9') {
			if (digits < 6) {
				frac = frac * 10 + (*s - '0');
				digits++;
			}
			s++;
		}
		if (digits == 0)
			return false;
		while (digits++ < 6)
			frac *= 10;
	}
	int off = 0;
	if (*s == 'Z' || *s == 'z') {
		s++;
	} else if (*s == '+' || *s == '-' || *s == ' ') {
		int oh, om;
		int sign = *s == '-' ? -1 : 1;
		if (sscanf(s + 1, "%2d:%2d%n", &oh, &om, &n) != 2 || n != 5 || oh > 23 || om > 59)
			return false;
		off = sign * (oh * 3600 + om * 60);
		s += 6;
	} else {
		return false;
	}
	static const int mdays[12] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	if (*s != '\0' || M < 1 || M > 12 || D < 1 || D > mdays[M - 1] || h > 23 || m > 59 || sec > 60 || Y < 1970)
		return false;
	bool leap = (Y % 4 == 0 && Y % 100 != 0) || Y % 400 == 0;
	if (M == 2 && D == 29 && !leap)
		return false;
	struct tm tm = {.tm_year = Y - 1900, .tm_mon = M - 1, .tm_mday = D, .tm_hour = h, .tm_min = m, .tm_sec = sec};
	time_t t = timegm(&tm);
	if (t == (time_t)-1)
		return false;
	int64_t v = ((int64_t)t - off) * 1000000 + frac;
	*out_us = v < 0 ? 0 : v;
	return true;
}

bool v_query_time(http_req *r, const char *name, int64_t def, int64_t *out)
{
	char *v = v_query(r, name);
	if (v == NULL) {
		*out = def;
		return true;
	}
	bool ok = parse_rfc3339(v, out);
	free(v);
	if (!ok)
		return bad(r, name, "must be an RFC 3339 time, e.g. 2026-11-21T10:00:00.123456Z");
	return true;
}
