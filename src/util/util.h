/* util.h — small helpers shared by every layer: clocks, time formatting,
 * random identifiers, bounded string copies. */
#ifndef OL_UTIL_H
#define OL_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define OL_WARN_UNUSED __attribute__((warn_unused_result))
#define OL_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
/* The longest tenant name: sql/001_foundation.sql checks '^[a-z0-9_-]{1,32}$'. */
#define OL_TENANT_NAME_MAX 32
/* The longest Redis stream key the relay builds (events_stream_prefix plus
 * the tenant's name, docs/events.md); a prefix that cannot hold the longest
 * tenant name is refused at start-up, so no key is ever cut. */
#define OL_STREAM_KEY_MAX 255

/* Wall clock in microseconds since the epoch. */
int64_t util_now_us(void);
/* Monotonic clock in milliseconds: for timeouts, never for timestamps. */
int64_t util_mono_ms(void);
/* Monotonic clock in microseconds: for durations. */
int64_t util_mono_us(void);
/* RFC 3339 UTC with microseconds: 2026-11-21T10:00:00.123456Z (buf >= 32). */
void util_format_time(char *buf, size_t len, int64_t epoch_us);
/* n random bytes (libsodium's source, drawn per thread in blocks). */
void util_random_bytes(void *out, size_t n);
/* Lowercase hex of nbytes random bytes, at most 64 (out must hold 2*nbytes+1). */
void util_random_hex(char *out, size_t nbytes);
/* <prefix><12 hex digits of the wall clock in ms><20 random hex digits>:
 * the ids the service makes (tr_..., evt_...), sortable by creation time. */
void util_new_id(const char *prefix, char *out, size_t len);
/* snprintf-style copy that always terminates; returns false if truncated. */
bool util_strlcpy(char *dst, const char *src, size_t size);
/* Parses a decimal integer in [min,max]; whole string must be consumed. */
bool util_parse_ll(const char *s, long long min, long long max, long long *out) OL_WARN_UNUSED;
/* Splits "host:port" (IPv6 as [::1]:80). host buffer >= 256. */
bool util_split_hostport(const char *s, char *host, size_t hostlen, int *port) OL_WARN_UNUSED;
/* An id of the API (accounts, transfers, holds, orders; docs/api.md): 1-64
 * bytes of [A-Za-z0-9_.:-]. */
bool util_id_ok(const char *s, size_t len);
/* True when every byte is visible ASCII (0x21..0x7e). */
bool util_visible_ascii(const char *s, size_t len);
/* SipHash (libsodium's crypto_shorthash) of the string s under a random
 * 16-byte key, as 64 bits: hash tables keyed by client-chosen ids, so that
 * chosen ids cannot pile into one chain. */
uint64_t util_shorthash64(const unsigned char key[16], const char *s);
/* Length of the longest prefix of s[0..len) that is well-formed UTF-8 (no
 * overlong forms, surrogates or code points past U+10FFFF): where to cut a
 * message so that a JSON encoder accepts it. */
size_t util_utf8_prefix(const char *s, size_t len);
/* Refuses a secret file (fd open on path) that its group or other users may
 * read, write or execute, as ssh refuses such a private key: false and *err
 * ("... chmod 600 ...") when a 077 bit is set or fstat fails. */
bool util_file_private(int fd, const char *path, char **err) OL_WARN_UNUSED;

#endif
