/* keys.c — the event signing keys (keys.h). The seed, not the 64-byte
 * secret key, is what the file stores: libsodium derives the key pair from
 * it, so a line cannot hold a public key that does not match its secret. */
#include "events/keys.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "log.h"
#include "util/util.h"

typedef struct ev_key {
	char kid[EV_KID_LEN];
	unsigned char pk[crypto_sign_PUBLICKEYBYTES];
	unsigned char sk[crypto_sign_SECRETKEYBYTES];
} ev_key;

struct ev_keys {
	char *path;
	pthread_mutex_t mu;
	ev_key *keys; /* the last one signs */
	int n;
	struct timespec mtime;
	off_t size;
};

static void kid_of(const unsigned char pk[crypto_sign_PUBLICKEYBYTES], char kid[EV_KID_LEN])
{
	unsigned char h[8];
	crypto_generichash(h, sizeof(h), pk, crypto_sign_PUBLICKEYBYTES, NULL, 0);
	sodium_bin2hex(kid, EV_KID_LEN, h, sizeof(h));
}

/* Parses the file's text into keys; false on a malformed line. */
static bool parse(char *text, ev_key **out, int *nout, char **err)
{
	ev_key *keys = NULL;
	int n = 0;
	int lineno = 0;
	for (char *save = NULL, *line = strtok_r(text, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
		lineno++;
		while (*line == ' ' || *line == '\t')
			line++;
		if (*line == '\0' || *line == '#')
			continue;
		char alg[16], kid[EV_KID_LEN + 8], b64[128];
		unsigned char seed[crypto_sign_SEEDBYTES];
		size_t seedlen = 0;
		if (sscanf(line, "%15s %24s %127s", alg, kid, b64) != 3 || strcmp(alg, "ed25519") != 0 ||
		    sodium_base642bin(seed, sizeof(seed), b64, strlen(b64), NULL, &seedlen, NULL, sodium_base64_VARIANT_ORIGINAL) != 0 ||
		    seedlen != sizeof(seed)) {
			if (asprintf(err, "line %d: expected 'ed25519 <kid> <base64 of a 32-byte seed>'", lineno) < 0)
				*err = NULL;
			free(keys);
			return false;
		}
		ev_key *grown = realloc(keys, (size_t)(n + 1) * sizeof(*keys));
		if (grown == NULL) {
			sodium_memzero(seed, sizeof(seed));
			free(keys);
			*err = strdup("out of memory");
			return false;
		}
		keys = grown;
		ev_key *k = &keys[n++];
		crypto_sign_seed_keypair(k->pk, k->sk, seed);
		sodium_memzero(seed, sizeof(seed));
		/* The id is derived from the key: a hand-edited kid that does not
		 * match is refused rather than trusted. */
		kid_of(k->pk, k->kid);
		if (strcmp(k->kid, kid) != 0) {
			if (asprintf(err, "line %d: kid %s does not match its key (expected %s)", lineno, kid, k->kid) < 0)
				*err = NULL;
			sodium_memzero(keys, (size_t)n * sizeof(*keys));
			free(keys);
			return false;
		}
	}
	if (n == 0) {
		*err = strdup("no key in the file");
		return false;
	}
	*out = keys;
	*nout = n;
	return true;
}

/* Opens the key file (flags as open's, mode 0600 when it creates it); -1
 * with *err when it cannot, or when others may access it: anyone who
 * reads it can sign events as this service. */
static int open_private(const char *path, int flags, char **err)
{
	int fd = open(path, flags | O_CLOEXEC, 0600);
	if (fd < 0) {
		if (asprintf(err, "cannot open %s: %s", path, strerror(errno)) < 0)
			*err = NULL;
		return -1;
	}
	if (!util_file_private(fd, path, err)) {
		close(fd);
		return -1;
	}
	return fd;
}

static bool load(const char *path, ev_key **keys, int *n, struct stat *st, char **err)
{
	int fd = open_private(path, O_RDONLY, err);
	if (fd < 0)
		return false;
	char *text = NULL;
	bool ok = fstat(fd, st) == 0 && st->st_size < 1024 * 1024 && (text = calloc(1, (size_t)st->st_size + 1)) != NULL &&
		  read(fd, text, (size_t)st->st_size) == st->st_size;
	close(fd);
	if (!ok) {
		free(text);
		if (asprintf(err, "cannot read %s", path) < 0)
			*err = NULL;
		return false;
	}
	ok = parse(text, keys, n, err);
	sodium_memzero(text, (size_t)st->st_size);
	free(text);
	return ok;
}

/* One new key line: "ed25519 <kid> <seed>\n". */
static bool new_line(char *line, size_t len, char kid[EV_KID_LEN])
{
	unsigned char seed[crypto_sign_SEEDBYTES], pk[crypto_sign_PUBLICKEYBYTES], sk[crypto_sign_SECRETKEYBYTES];
	char b64[sodium_base64_ENCODED_LEN(crypto_sign_SEEDBYTES, sodium_base64_VARIANT_ORIGINAL)];
	randombytes_buf(seed, sizeof(seed));
	crypto_sign_seed_keypair(pk, sk, seed);
	kid_of(pk, kid);
	sodium_bin2base64(b64, sizeof(b64), seed, sizeof(seed), sodium_base64_VARIANT_ORIGINAL);
	int w = snprintf(line, len, "ed25519 %s %s\n", kid, b64);
	sodium_memzero(seed, sizeof(seed));
	sodium_memzero(sk, sizeof(sk));
	sodium_memzero(b64, sizeof(b64));
	return w > 0 && (size_t)w < len;
}

static bool append_line(int fd, const char *line, const char *path, char **err)
{
	size_t len = strlen(line);
	if (write(fd, line, len) != (ssize_t)len || fsync(fd) != 0) {
		if (asprintf(err, "cannot write %s: %s", path, strerror(errno)) < 0)
			*err = NULL;
		return false;
	}
	return true;
}

bool ev_keys_add(const char *path, char kid_out[EV_KID_LEN], char **err)
{
	*err = NULL;
	int fd = open_private(path, O_WRONLY | O_APPEND | O_CREAT, err);
	if (fd < 0)
		return false;
	char line[160];
	bool ok = new_line(line, sizeof(line), kid_out) && append_line(fd, line, path, err);
	sodium_memzero(line, sizeof(line));
	close(fd);
	return ok;
}

/* Creates the file with a first key unless it exists (O_EXCL: two daemons
 * starting at once end up with one key, the second reads the first's). */
static bool create_if_missing(const char *path, char **err)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0 && errno == EEXIST)
		return true;
	if (fd < 0) {
		if (asprintf(err, "cannot create %s: %s", path, strerror(errno)) < 0)
			*err = NULL;
		return false;
	}
	char line[160], kid[EV_KID_LEN];
	bool ok = new_line(line, sizeof(line), kid) &&
		  append_line(fd, "# onceledger event signing keys (docs/events.md); the last line signs\n", path, err) &&
		  append_line(fd, line, path, err);
	sodium_memzero(line, sizeof(line));
	close(fd);
	if (ok)
		log_info("events_key_created", "{s:s, s:s}", "file", path, "kid", kid);
	return ok;
}

ev_keys *ev_keys_open(const char *path, bool create, char **err)
{
	*err = NULL;
	if (path == NULL || path[0] == '\0') {
		*err = strdup("no events key file (events_key_file)");
		return NULL;
	}
	if (create && !create_if_missing(path, err))
		return NULL;
	ev_keys *k = calloc(1, sizeof(*k));
	struct stat st;
	if (k == NULL || (k->path = strdup(path)) == NULL) {
		free(k);
		*err = strdup("out of memory");
		return NULL;
	}
	if (!load(path, &k->keys, &k->n, &st, err)) {
		free(k->path);
		free(k);
		return NULL;
	}
	k->mtime = st.st_mtim;
	k->size = st.st_size;
	pthread_mutex_init(&k->mu, NULL);
	return k;
}

void ev_keys_free(ev_keys *k)
{
	if (k == NULL)
		return;
	if (k->keys != NULL)
		sodium_memzero(k->keys, (size_t)k->n * sizeof(*k->keys));
	free(k->keys);
	free(k->path);
	pthread_mutex_destroy(&k->mu);
	free(k);
}

void ev_keys_refresh(ev_keys *k)
{
	struct stat st;
	if (stat(k->path, &st) != 0)
		return;
	pthread_mutex_lock(&k->mu);
	bool same = st.st_mtim.tv_sec == k->mtime.tv_sec && st.st_mtim.tv_nsec == k->mtime.tv_nsec && st.st_size == k->size;
	pthread_mutex_unlock(&k->mu);
	if (same)
		return;
	ev_key *keys = NULL;
	int n = 0;
	char *err = NULL;
	if (!load(k->path, &keys, &n, &st, &err)) {
		log_error("events_key_reload_failed", "{s:s, s:s}", "file", k->path, "error", err ? err : "?");
		free(err);
		return;
	}
	pthread_mutex_lock(&k->mu);
	ev_key *old = k->keys;
	int oldn = k->n;
	k->keys = keys;
	k->n = n;
	k->mtime = st.st_mtim;
	k->size = st.st_size;
	pthread_mutex_unlock(&k->mu);
	sodium_memzero(old, (size_t)oldn * sizeof(*old));
	free(old);
	log_info("events_key_reloaded", "{s:s, s:i, s:s}", "file", k->path, "keys", n, "kid", keys[n - 1].kid);
}

bool ev_keys_sign(ev_keys *k, const void *msg, size_t len, char sig[EV_SIG_B64_LEN], char kid[EV_KID_LEN])
{
	unsigned char s[crypto_sign_BYTES];
	pthread_mutex_lock(&k->mu);
	const ev_key *key = &k->keys[k->n - 1];
	crypto_sign_detached(s, NULL, msg, len, key->sk);
	memcpy(kid, key->kid, EV_KID_LEN);
	pthread_mutex_unlock(&k->mu);
	sodium_bin2base64(sig, EV_SIG_B64_LEN, s, sizeof(s), sodium_base64_VARIANT_ORIGINAL);
	return true;
}

bool ev_keys_public(ev_keys *k, const char *kid, char kid_out[EV_KID_LEN], char pub[EV_PUB_B64_LEN])
{
	bool found = false;
	pthread_mutex_lock(&k->mu);
	for (int i = k->n - 1; i >= 0 && !found; i--) {
		const ev_key *key = &k->keys[i];
		if (kid != NULL && strcmp(kid, key->kid) != 0)
			continue;
		memcpy(kid_out, key->kid, EV_KID_LEN);
		sodium_bin2base64(pub, EV_PUB_B64_LEN, key->pk, sizeof(key->pk), sodium_base64_VARIANT_ORIGINAL);
		found = true;
	}
	pthread_mutex_unlock(&k->mu);
	return found;
}

void ev_keys_derive(ev_keys *k, const char *purpose, unsigned char *out, size_t len)
{
	pthread_mutex_lock(&k->mu);
	/* libsodium's secret key is seed || public key: the seed keys the hash. */
	crypto_generichash(out, len, (const unsigned char *)purpose, strlen(purpose), k->keys[0].sk, crypto_sign_SEEDBYTES);
	pthread_mutex_unlock(&k->mu);
}

void ev_keys_each(ev_keys *k, void (*fn)(const char *kid, const char *pub, bool signing, void *arg), void *arg)
{
	pthread_mutex_lock(&k->mu);
	for (int i = 0; i < k->n; i++) {
		char pub[EV_PUB_B64_LEN];
		sodium_bin2base64(pub, sizeof(pub), k->keys[i].pk, sizeof(k->keys[i].pk), sodium_base64_VARIANT_ORIGINAL);
		fn(k->keys[i].kid, pub, i == k->n - 1, arg);
	}
	pthread_mutex_unlock(&k->mu);
}
