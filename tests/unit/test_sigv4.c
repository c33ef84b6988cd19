/* Unit tests for SigV4 verification against requests signed by botocore
 * (tests/unit/sigv4_vectors.h, from gen_sigv4_vectors.py): every vector
 * verifies, and every one-byte tampering, clock skew and malformed header is
 * refused with the status AWS would give. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <strings.h>

#include <sodium.h>

#include "auth/sigv4.h"
#include "sigv4_vectors.h"
#include "tap.h"

#define MAXH (SIGV4_VEC_MAX_HEADERS + 4)
#define VLEN 4096

/* A mutable copy of a vector's request, so single bytes can be tampered with. */
typedef struct treq {
	const char *method, *path, *query;
	size_t n;
	char names[MAXH][64];
	char values[MAXH][VLEN];
	const char *np[MAXH], *vp[MAXH];
	unsigned char body[1024];
	size_t body_len;
} treq;

static treq T;

static void load(treq *t, const struct sigv4_vector *v)
{
	memset(t, 0, sizeof(*t));
	t->method = v->method;
	t->path = v->path;
	t->query = v->query;
	t->n = v->nheaders;
	for (size_t i = 0; i < v->nheaders; i++) {
		snprintf(t->names[i], sizeof(t->names[i]), "%s", v->hnames[i]);
		snprintf(t->values[i], sizeof(t->values[i]), "%s", v->hvalues[i]);
	}
	memcpy(t->body, v->body, v->body_len);
	t->body_len = v->body_len;
}

static sigv4_req req_of(treq *t)
{
	for (size_t i = 0; i < t->n; i++) {
		t->np[i] = t->names[i];
		t->vp[i] = t->values[i];
	}
	sigv4_req r = {t->method, t->path, t->query, t->n, t->np, t->vp, t->body, t->body_len};
	return r;
}

static char *find(treq *t, const char *name)
{
	for (size_t i = 0; i < t->n; i++)
		if (strcasecmp(t->names[i], name) == 0)
			return t->values[i];
	return NULL;
}

/* Replaces the first header called name, or appends it. */
static void set(treq *t, const char *name, const char *value)
{
	char *v = find(t, name);
	if (v == NULL) {
		snprintf(t->names[t->n], sizeof(t->names[0]), "%s", name);
		v = t->values[t->n++];
	}
	snprintf(v, VLEN, "%s", value);
}

static void add(treq *t, const char *name, const char *value)
{
	snprintf(t->names[t->n], sizeof(t->names[0]), "%s", name);
	snprintf(t->values[t->n++], VLEN, "%s", value);
}

static void del(treq *t, const char *name)
{
	for (size_t i = 0; i < t->n; i++) {
		if (strcasecmp(t->names[i], name) == 0) {
			memmove(t->names[i], t->names[i + 1], (t->n - i - 1) * sizeof(t->names[0]));
			memmove(t->values[i], t->values[i + 1], (t->n - i - 1) * sizeof(t->values[0]));
			t->n--;
			return;
		}
	}
}

/* Replaces the first occurrence of from in the Authorization header with to. */
static bool edit_auth(treq *t, const char *from, const char *to)
{
	char *a = find(t, "Authorization"), buf[VLEN];
	char *at = a != NULL ? strstr(a, from) : NULL;
	if (at == NULL)
		return false;
	snprintf(buf, sizeof(buf), "%.*s%s%s", (int)(at - a), a, to, at + strlen(from));
	snprintf(a, VLEN, "%s", buf);
	return true;
}

static const char *last_why;
/* one cache across every check: the cached path must agree with the
 * uncached one through hits, secrets changed and dates moved */
static sigv4_key_cache cache;
static int cache_disagreements;

/* parse + verify, as the endpoint does; the cached verification too. */
static sigv4_status run(treq *t, const char *secret, int64_t now)
{
	sigv4_req r = req_of(t);
	sigv4_auth a;
	last_why = NULL;
	sigv4_status st = sigv4_parse(&r, &a, &last_why);
	if (st == SIGV4_OK) {
		st = sigv4_verify(&r, &a, secret, now, &last_why);
		const char *why2 = NULL;
		sigv4_status st2 = sigv4_verify_cached(&r, &a, secret, now, &cache, &why2);
		if (st2 != st || (st != SIGV4_OK && strcmp(why2, last_why) != 0))
			cache_disagreements++;
	}
	if (st != SIGV4_OK && (last_why == NULL || last_why[0] == '\0')) {
		printf("# no message for status %d\n", (int)st);
		return (sigv4_status)-1;
	}
	return st;
}

static char name_buf[256];

static const char *nm(const struct sigv4_vector *v, const char *what)
{
	snprintf(name_buf, sizeof(name_buf), "%s: %s", v->name, what);
	return name_buf;
}

static bool is_signed(const char *auth, const char *name)
{
	char lname[64], needle[80];
	size_t i;
	for (i = 0; name[i] != '\0' && i < sizeof(lname) - 1; i++)
		lname[i] = (char)(name[i] >= 'A' && name[i] <= 'Z' ? name[i] + 32 : name[i]);
	lname[i] = '\0';
	const char *sh = strstr(auth, "SignedHeaders=");
	const char *end = strchr(sh, ',');
	snprintf(needle, sizeof(needle), ";%s;", lname);
	char list[1100];
	snprintf(list, sizeof(list), ";%.*s;", (int)(end - sh - 14), sh + 14);
	return strstr(list, needle) != NULL;
}

static void test_vector(const struct sigv4_vector *v)
{
	const int64_t now = SIGV4_VEC_NOW;

	load(&T, v);
	{
		sigv4_req r = req_of(&T);
		sigv4_auth a;
		const char *why = NULL;
		CHECK(sigv4_parse(&r, &a, &why) == SIGV4_OK, nm(v, "parses"));
		CHECK_STR(a.signature, v->signature, nm(v, "signature extracted"));
		CHECK_STR(a.amz_date, "20261121T100000Z", nm(v, "X-Amz-Date extracted"));
		CHECK_STR(a.date, "20261121", nm(v, "credential date extracted"));
		CHECK_STR(a.service, "dynamodb", nm(v, "service extracted"));
		CHECK(strstr(find(&T, "Authorization"), a.access_key) != NULL && a.region[0] != '\0',
		      nm(v, "access key and region extracted"));
	}
	CHECK(run(&T, v->secret, now) == SIGV4_OK, nm(v, "botocore signature verifies"));
	CHECK(run(&T, v->secret, now + 900) == SIGV4_OK, nm(v, "verifies at +15 min"));
	CHECK(run(&T, v->secret, now - 900) == SIGV4_OK, nm(v, "verifies at -15 min (client clock ahead)"));
	CHECK(run(&T, v->secret, now + 16 * 60) == SIGV4_EXPIRED && strncmp(last_why, "Signature expired", 17) == 0,
	      nm(v, "16 min later: EXPIRED, 'Signature expired'"));
	CHECK(run(&T, v->secret, now - 16 * 60) == SIGV4_EXPIRED, nm(v, "16 min in the future: EXPIRED"));

	/* one byte of the body */
	if (T.body_len > 0)
		T.body[T.body_len / 2] ^= 0x01;
	else
		T.body[T.body_len++] = ' ';
	CHECK(run(&T, v->secret, now) == SIGV4_MISMATCH, nm(v, "tampered body: MISMATCH"));
	load(&T, v);

	/* one byte of the secret */
	char secret[256];
	snprintf(secret, sizeof(secret), "%s", v->secret);
	secret[3] ^= 0x01;
	CHECK(run(&T, secret, now) == SIGV4_MISMATCH && strstr(last_why, "does not match") != NULL,
	      nm(v, "wrong secret: MISMATCH"));
	secret[3] ^= 0x01;
	secret[strlen(secret) - 1] = '\0';
	CHECK(run(&T, secret, now) == SIGV4_MISMATCH, nm(v, "truncated secret: MISMATCH"));

	/* one hex digit of the signature */
	char sig[65];
	snprintf(sig, sizeof(sig), "%s", v->signature);
	sig[10] = sig[10] == '0' ? '1' : '0';
	CHECK(edit_auth(&T, v->signature, sig) && run(&T, v->secret, now) == SIGV4_MISMATCH,
	      nm(v, "tampered signature: MISMATCH"));
	load(&T, v);

	/* one byte of each header value: signed ones must break the signature,
	 * unsigned ones (User-Agent, Content-Length) must not matter */
	const char *auth = v->hvalues[0];
	for (size_t i = 0; i < v->nheaders; i++)
		if (strcasecmp(v->hnames[i], "Authorization") == 0)
			auth = v->hvalues[i];
	for (size_t i = 0; i < v->nheaders; i++) {
		char what[128];
		if (strcasecmp(v->hnames[i], "Authorization") == 0 || strcasecmp(v->hnames[i], "X-Amz-Date") == 0)
			continue;
		load(&T, v);
		size_t len = strlen(T.values[i]);
		T.values[i][len / 2] = T.values[i][len / 2] == 'Q' ? 'R' : 'Q';
		bool sgn = is_signed(auth, v->hnames[i]);
		snprintf(what, sizeof(what), "one byte of %s %s", sgn ? "signed" : "unsigned", v->hnames[i]);
		CHECK(run(&T, v->secret, now) == (sgn ? SIGV4_MISMATCH : SIGV4_OK), nm(v, what));
	}
	load(&T, v);

	/* The date is part of the string to sign: moving it breaks the signature,
	 * and the credential scope's date must agree with it. */
	set(&T, "X-Amz-Date", "20261121T100500Z");
	CHECK(run(&T, v->secret, now) == SIGV4_MISMATCH, nm(v, "X-Amz-Date moved 5 min: MISMATCH"));
	set(&T, "X-Amz-Date", "20261122T000000Z");
	CHECK(run(&T, v->secret, now + 14 * 3600) == SIGV4_MISMATCH && strstr(last_why, "Credential scope") != NULL,
	      nm(v, "credential date differs from X-Amz-Date: MISMATCH"));
	load(&T, v);

	/* an unsigned X-Amz-Content-Sha256 is ignored: the body is always hashed */
	if (find(&T, "X-Amz-Content-Sha256") == NULL) {
		add(&T, "X-Amz-Content-Sha256", "UNSIGNED-PAYLOAD");
		CHECK(run(&T, v->secret, now) == SIGV4_OK, nm(v, "unsigned X-Amz-Content-Sha256 ignored"));
		T.body[0] ^= 0x20;
		if (T.body_len == 0)
			T.body_len = 1;
		CHECK(run(&T, v->secret, now) == SIGV4_MISMATCH,
		      nm(v, "UNSIGNED-PAYLOAD does not excuse a tampered body"));
	}
	load(&T, v);

	/* the Authorization components in another order, without spaces */
	{
		const char *a = find(&T, "Authorization");
		const char *cred = strstr(a, "Credential="), *sh = strstr(a, "SignedHeaders="), *sg = strstr(a, "Signature=");
		char buf[VLEN];
		snprintf(buf, sizeof(buf), "AWS4-HMAC-SHA256 %s,%.*s,  %.*s", sg, (int)(strchr(cred, ',') - cred), cred,
			 (int)(strchr(sh, ',') - sh), sh);
		set(&T, "Authorization", buf);
		CHECK(run(&T, v->secret, now) == SIGV4_OK, nm(v, "components reordered, spacing varied"));
	}
	load(&T, v);

	/* the canonical path depends on the path actually requested */
	T.path = strcmp(v->path, "/") == 0 ? "/x" : "/";
	CHECK(run(&T, v->secret, now) == SIGV4_MISMATCH, nm(v, "other path: MISMATCH"));
	load(&T, v);
	T.query = v->query == NULL ? "a=1" : NULL;
	CHECK(run(&T, v->secret, now) == SIGV4_MISMATCH, nm(v, "other query: MISMATCH"));
	load(&T, v);
	T.method = strcmp(v->method, "POST") == 0 ? "PUT" : "POST";
	CHECK(run(&T, v->secret, now) == SIGV4_MISMATCH, nm(v, "other method: MISMATCH"));
}

static const struct sigv4_vector *vec(const char *name)
{
	for (size_t i = 0; i < OL_ARRAY_LEN(sigv4_vectors); i++)
		if (strcmp(sigv4_vectors[i].name, name) == 0)
			return &sigv4_vectors[i];
	abort();
}

/* Canonicalization details that the signer normalises, so the server must too. */
static void test_canonical_forms(void)
{
	const int64_t now = SIGV4_VEC_NOW;
	const struct sigv4_vector *v = vec("extra_spaces");

	load(&T, v);
	set(&T, "X-Amz-Meta-Note", "a b c d");
	CHECK(run(&T, v->secret, now) == SIGV4_OK, "inner whitespace collapsed (Trimall)");
	set(&T, "X-Amz-Meta-Note", "a\tb  c\t\td");
	CHECK(run(&T, v->secret, now) == SIGV4_OK, "tabs collapse like spaces");
	set(&T, "X-Amz-Meta-Note", "ab c d");
	CHECK(run(&T, v->secret, now) == SIGV4_MISMATCH, "removing a space is a change");

	v = vec("duplicate_header");
	load(&T, v);
	CHECK(run(&T, v->secret, now) == SIGV4_OK, "repeated header joined with ','");
	del(&T, "X-Amz-Meta-Tag");
	CHECK(run(&T, v->secret, now) == SIGV4_MISMATCH, "dropping one of a repeated header: MISMATCH");

	v = vec("query_raw_repeated");
	load(&T, v);
	T.query = "a=1&m=%2fslash&a=2&z=1";
	CHECK(run(&T, v->secret, now) == SIGV4_OK, "query pairs reordered, lowercase hex: same canonical form");
	T.query = "a=1&a=2&z=1";
	CHECK(run(&T, v->secret, now) == SIGV4_MISMATCH, "query pair removed: MISMATCH");

	v = vec("query_params");
	load(&T, v);
	T.query = "A=upper&a=x%20y&a-b_c.d~e&b=%32&c=%c3%bc%2f%2b%3d%26";
	CHECK(run(&T, v->secret, now) == SIGV4_OK, "query decoded and re-encoded before sorting");

	v = vec("path_dot_segments");
	load(&T, v);
	T.path = "/tables/my%20table/items/k%2Fv/";
	CHECK(run(&T, v->secret, now) == SIGV4_OK, "dot and empty path segments removed");
	T.path = "/tables/my%20table/items/k%2Fv";
	CHECK(run(&T, v->secret, now) == SIGV4_MISMATCH, "trailing slash kept");

	char deep[4096] = "";
	for (int i = 0; i < 100; i++)
		strcat(deep, "/a");
	T.path = deep;
	CHECK(run(&T, v->secret, now) == SIGV4_MALFORMED, "100 path segments: MALFORMED, not overflow");
	load(&T, v);
	char many[4096] = "";
	for (int i = 0; i < 100; i++)
		strcat(many, "&k=v");
	T.query = many + 1;
	CHECK(run(&T, v->secret, now) == SIGV4_MALFORMED, "100 query pairs: MALFORMED, not overflow");
}

static void test_malformed(void)
{
	const int64_t now = SIGV4_VEC_NOW;
	const struct sigv4_vector *v = vec("put_item");
	char big[2048];

	load(&T, v);
	del(&T, "Authorization");
	CHECK(run(&T, v->secret, now) == SIGV4_MISSING && strcmp(last_why, "Request is missing Authentication Token") == 0,
	      "no Authorization: MISSING");
	set(&T, "Authorization", "");
	CHECK(run(&T, v->secret, now) == SIGV4_MISSING, "empty Authorization: MISSING");

#define MALFORMED(value, name)                                                  \
	do {                                                                    \
		load(&T, v);                                                    \
		set(&T, "Authorization", value);                                \
		CHECK(run(&T, v->secret, now) == SIGV4_MALFORMED, name);        \
	} while (0)
#define CRED "Credential=AKIDEXAMPLE/20261121/us-east-1/dynamodb/aws4_request"
#define SH "SignedHeaders=content-type;host;x-amz-date;x-amz-target"
#define SIG "Signature=473fc234d18840b5ce2344a05f57d4c8ac516dafe1408e2912f60d12a1a10a87"
	/* control: the header rebuilt from these pieces is the vector's own */
	load(&T, v);
	set(&T, "Authorization", "AWS4-HMAC-SHA256 " CRED ", " SH ", " SIG);
	CHECK(run(&T, v->secret, now) == SIGV4_OK, "control: rebuilt header verifies");
	MALFORMED("garbage", "garbage: MALFORMED");
	MALFORMED("\x01\x02 , = ;", "control bytes: MALFORMED");
	MALFORMED("AWS4-HMAC-SHA1 " CRED ", " SH ", " SIG, "wrong algorithm: MALFORMED");
	MALFORMED("aws4-hmac-sha256 " CRED ", " SH ", " SIG, "algorithm is case-sensitive: MALFORMED");
	MALFORMED("Bearer abc", "other scheme: MALFORMED");
	MALFORMED("AWS4-HMAC-SHA256", "algorithm alone: MALFORMED");
	MALFORMED("AWS4-HMAC-SHA256 " SH ", " SIG, "no Credential: MALFORMED");
	MALFORMED("AWS4-HMAC-SHA256 " CRED ", " SIG, "no SignedHeaders: MALFORMED");
	MALFORMED("AWS4-HMAC-SHA256 " CRED ", " SH, "no Signature: MALFORMED");
	MALFORMED("AWS4-HMAC-SHA256 " CRED ", " SH ", " SIG ", " SIG, "Signature twice: MALFORMED");
	MALFORMED("AWS4-HMAC-SHA256 " CRED ", " SH ", " SIG ", Foo=bar", "unknown parameter: MALFORMED");
	MALFORMED("AWS4-HMAC-SHA256 " CRED ", " SH ", " SIG ",", "trailing comma: MALFORMED");
	MALFORMED("AWS4-HMAC-SHA256 " CRED " " SH " " SIG, "no commas: MALFORMED");
	MALFORMED("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261121/us-east-1/dynamodb, " SH ", " SIG,
		  "4-element credential: MALFORMED");
	MALFORMED("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261121/us-east-1/dynamodb/aws4_request/x, " SH ", " SIG,
		  "6-element credential: MALFORMED");
	MALFORMED("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261121/us-east-1/dynamodb/aws5_request, " SH ", " SIG,
		  "wrong terminator: MALFORMED");
	MALFORMED("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/2026112/us-east-1/dynamodb/aws4_request, " SH ", " SIG,
		  "7-digit credential date: MALFORMED");
	MALFORMED("AWS4-HMAC-SHA256 Credential=/20261121/us-east-1/dynamodb/aws4_request, " SH ", " SIG,
		  "empty access key: MALFORMED");
	MALFORMED("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261121//dynamodb/aws4_request, " SH ", " SIG,
		  "empty region: MALFORMED");
	MALFORMED("AWS4-HMAC-SHA256 " CRED ", SignedHeaders=content-type;x-amz-date;x-amz-target, " SIG,
		  "SignedHeaders without host: MALFORMED");
	CHECK(strstr(last_why, "'Host'") != NULL, "host message is AWS's");
	MALFORMED("AWS4-HMAC-SHA256 " CRED ", SignedHeaders=Content-Type;Host, " SIG, "uppercase SignedHeaders: MALFORMED");
	MALFORMED("AWS4-HMAC-SHA256 " CRED ", SignedHeaders=host;;x-amz-date, " SIG, "empty signed name: MALFORMED");
	MALFORMED("AWS4-HMAC-SHA256 " CRED ", SignedHeaders=, " SIG, "empty SignedHeaders: MALFORMED");
	MALFORMED("AWS4-HMAC-SHA256 " CRED ", SignedHeaders=host;x-absent, " SIG, "signed header absent: MALFORMED");
	MALFORMED("AWS4-HMAC-SHA256 " CRED ", " SH ", Signature=473FC234D18840B5CE2344A05F57D4C8AC516DAFE1408E2912F60D12A1A10A87",
		  "uppercase signature: MALFORMED");
	MALFORMED("AWS4-HMAC-SHA256 " CRED ", " SH ", Signature=473fc234", "short signature: MALFORMED");
	MALFORMED("AWS4-HMAC-SHA256 " CRED ", " SH ", " SIG "0", "65-digit signature: MALFORMED");

	/* oversized fields are refused, never truncated */
	memset(big, 'A', 129);
	snprintf(big + 129, sizeof(big) - 129, "/20261121/us-east-1/dynamodb/aws4_request");
	char hdr[VLEN];
	snprintf(hdr, sizeof(hdr), "AWS4-HMAC-SHA256 Credential=%s, " SH ", " SIG, big);
	MALFORMED(hdr, "129-byte access key: MALFORMED");
	memset(big, 'A', 128);
	snprintf(big + 128, sizeof(big) - 128, "/20261121/us-east-1/dynamodb/aws4_request");
	snprintf(hdr, sizeof(hdr), "AWS4-HMAC-SHA256 Credential=%s, " SH ", " SIG, big);
	load(&T, v);
	set(&T, "Authorization", hdr);
	/* (the access key is not in the string to sign: the secret looked up by it is what binds it) */
	CHECK(run(&T, v->secret, now) == SIGV4_OK, "128-byte access key: accepted");
	memset(big, 'r', 65);
	big[65] = '\0';
	snprintf(hdr, sizeof(hdr), "AWS4-HMAC-SHA256 Credential=AKID/20261121/%s/dynamodb/aws4_request, " SH ", " SIG,
		 big);
	MALFORMED(hdr, "65-byte region: MALFORMED");
	snprintf(hdr, sizeof(hdr), "AWS4-HMAC-SHA256 Credential=AKID/20261121/us-east-1/%s/aws4_request, " SH ", " SIG,
		 big);
	MALFORMED(hdr, "65-byte service: MALFORMED");
	size_t o = (size_t)snprintf(big, sizeof(big), "host");
	while (o < 1024)
		o += (size_t)snprintf(big + o, sizeof(big) - o, ";host");
	snprintf(hdr, sizeof(hdr), "AWS4-HMAC-SHA256 " CRED ", SignedHeaders=%s, " SIG, big);
	MALFORMED(hdr, "SignedHeaders over 1023 bytes: MALFORMED");

	/* X-Amz-Date */
	load(&T, v);
	del(&T, "X-Amz-Date");
	CHECK(run(&T, v->secret, now) == SIGV4_MALFORMED && strstr(last_why, "X-Amz-Date") != NULL,
	      "missing X-Amz-Date: MALFORMED");
	static const char *const bad_dates[] = {"2026-11-21T10:00:00Z", "20261121T100000", "20261121T100000Z0",
						"20261321T100000Z", "20261100T100000Z", "20261131T100000Z",
						"20250229T100000Z", "20261121T240000Z", "20261121T106000Z",
						"20261121t100000z", "",	"Fri, 21 Nov 2026 10:00:00 GMT"};
	for (size_t i = 0; i < OL_ARRAY_LEN(bad_dates); i++) {
		char what[96];
		load(&T, v);
		set(&T, "X-Amz-Date", bad_dates[i]);
		snprintf(what, sizeof(what), "X-Amz-Date '%s': MALFORMED", bad_dates[i]);
		CHECK(run(&T, v->secret, now) == SIGV4_MALFORMED, what);
	}
	load(&T, v);
	set(&T, "X-Amz-Date", "20280229T100000Z");
	CHECK(run(&T, v->secret, now) == SIGV4_MISMATCH, "leap day parses (then the scope date differs)");
	load(&T, v);
	add(&T, "x-amz-date", "20261121T100000Z");
	CHECK(run(&T, v->secret, now) == SIGV4_MALFORMED, "two X-Amz-Date headers: MALFORMED");
	load(&T, v);
	add(&T, "authorization", find(&T, "Authorization"));
	CHECK(run(&T, v->secret, now) == SIGV4_MALFORMED, "two Authorization headers: MALFORMED");

	/* verify() never trusts the struct it is given */
	{
		load(&T, v);
		sigv4_req r = req_of(&T);
		sigv4_auth a;
		const char *why;
		CHECK(sigv4_parse(&r, &a, &why) == SIGV4_OK, "parse for struct checks");
		sigv4_auth b = a;
		memset(b.region, 'x', sizeof(b.region));
		CHECK(sigv4_verify(&r, &b, v->secret, now, &why) == SIGV4_MALFORMED, "unterminated field: MALFORMED");
		b = a;
		b.signature[63] = '\0';
		CHECK(sigv4_verify(&r, &b, v->secret, now, &why) == SIGV4_MALFORMED, "short signature field: MALFORMED");
		CHECK(sigv4_verify(&r, &a, v->secret, INT64_MIN, &why) == SIGV4_EXPIRED, "now = INT64_MIN: EXPIRED");
		CHECK(sigv4_verify(&r, &a, v->secret, INT64_MAX, &why) == SIGV4_EXPIRED, "now = INT64_MAX: EXPIRED");
		CHECK(sigv4_verify(&r, &a, NULL, now, &why) == SIGV4_MISMATCH, "NULL secret: MISMATCH");
		CHECK(sigv4_verify(&r, &a, "", now, &why) == SIGV4_MISMATCH, "empty secret: MISMATCH");
	}
}

/* A hit serves only the same secret and scope: a wrong secret or another
 * day right after a hit is still refused. */
static void test_cache(void)
{
	const struct sigv4_vector *v = &sigv4_vectors[0];
	const int64_t now = SIGV4_VEC_NOW;
	sigv4_key_cache c;
	memset(&c, 0, sizeof(c));
	load(&T, v);
	sigv4_req r = req_of(&T);
	sigv4_auth a;
	const char *why = NULL;
	CHECK(sigv4_parse(&r, &a, &why) == SIGV4_OK, "cache: parses");
	CHECK(sigv4_verify_cached(&r, &a, v->secret, now, &c, &why) == SIGV4_OK && c.misses == 1 && c.hits == 0,
	      "cache: first verification derives the key");
	CHECK(sigv4_verify_cached(&r, &a, v->secret, now, &c, &why) == SIGV4_OK && c.misses == 1 && c.hits == 1,
	      "cache: second verification hits");
	char other[128];
	snprintf(other, sizeof(other), "%sX", v->secret);
	CHECK(sigv4_verify_cached(&r, &a, other, now, &c, &why) == SIGV4_MISMATCH && c.misses == 2,
	      "cache: another secret misses and is refused");
	sigv4_auth b = a;
	b.region[0] = b.region[0] == 'x' ? 'y' : 'x';
	CHECK(sigv4_verify_cached(&r, &b, v->secret, now, &c, &why) == SIGV4_MISMATCH && c.misses == 3,
	      "cache: another region misses and is refused");
	for (int i = 0; i < SIGV4_KEY_CACHE_SLOTS; i++) {
		snprintf(other, sizeof(other), "%s%d", v->secret, i);
		CHECK(sigv4_verify_cached(&r, &a, other, now, &c, &why) == SIGV4_MISMATCH, "cache: filler refused");
	}
	CHECK(sigv4_verify_cached(&r, &a, v->secret, now, &c, &why) == SIGV4_OK && c.misses == 4 + SIGV4_KEY_CACHE_SLOTS,
	      "cache: an evicted key is derived again and verifies");
}

int main(void)
{
	if (sodium_init() < 0)
		return 1;
	for (size_t i = 0; i < OL_ARRAY_LEN(sigv4_vectors); i++)
		test_vector(&sigv4_vectors[i]);
	test_canonical_forms();
	test_malformed();

	CHECK(cache_disagreements == 0, "cached verification agrees with the uncached one on every check");
	CHECK(cache.hits > 0 && cache.misses > 0, "the checks both hit and missed the signing-key cache");
	test_cache();

	CHECK_STR(sigv4_error_type(SIGV4_MISSING), "MissingAuthenticationTokenException", "MISSING type");
	CHECK_STR(sigv4_error_type(SIGV4_MALFORMED), "IncompleteSignatureException", "MALFORMED type");
	CHECK_STR(sigv4_error_type(SIGV4_EXPIRED), "InvalidSignatureException", "EXPIRED type");
	CHECK_STR(sigv4_error_type(SIGV4_MISMATCH), "InvalidSignatureException", "MISMATCH type");
	CHECK(sigv4_error_type(SIGV4_OK) == NULL, "OK has no type");
	return it_test_done();
}
