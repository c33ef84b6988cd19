/* The AttributeValue model of the item layer: every DynamoDB type held
 * losslessly, decoded from and encoded to DynamoDB JSON ({"S":"x"},
 * {"N":"1.5"}, {"B":"<base64>"}, ...) with DynamoDB's validation rules and
 * messages, item sizes as DynamoDB counts them, equality and ordering. */
#ifndef IT_VALUE_H
#define IT_VALUE_H

#include <stdbool.h>
#include <stddef.h>
#include <jansson.h>

#include "items/error.h"

#define IT_MAX_ITEM_SIZE 409600	/* 400 KB */
#define IT_MAX_DEPTH 32		/* nesting levels of M and L */

typedef enum it_type {
	IT_S, IT_N, IT_B, IT_BOOL, IT_NULL, IT_M, IT_L, IT_SS, IT_NS, IT_BS
} it_type;

/* A byte string: S (UTF-8), N (canonical decimal), B (raw bytes), and set
 * members. Always NUL-terminated at ptr[len] for convenience. */
typedef struct it_str {
	char *ptr;
	size_t len;
} it_str;

typedef struct it_value it_value;

/* One attribute of a map: name and value. */
typedef struct it_attr {
	it_str name;
	it_value *value;
} it_attr;

struct it_value {
	it_type type;
	union {
		it_str s;	/* S, N, B */
		bool b;		/* BOOL */
		struct {	/* M: sorted by name (bytewise), unique */
			it_attr *v;
			size_t n;
		} m;
		struct {	/* L */
			it_value **v;
			size_t n;
		} l;
		struct {	/* SS, NS, BS: sorted (it_value_cmp order), unique */
			it_str *v;
			size_t n;
		} set;
	} u;
};

/* "S", "N", ..., "BS". */
const char *it_type_name(it_type t);
bool it_type_from_name(const char *name, it_type *t);

/* Constructors (NULL when out of memory); copies its arguments. */
it_value *it_value_new_str(it_type t, const char *p, size_t len);
it_value *it_value_new_bool(bool b);
it_value *it_value_new_null(void);
it_value *it_value_new_map(void);
it_value *it_value_new_list(void);
it_value *it_value_copy(const it_value *v);
void it_value_free(it_value *v);

/* Map access: find by name, set (replacing, takes ownership of v), remove. */
it_value *it_map_get(const it_value *m, const char *name, size_t len);
bool it_map_set(it_value *m, const char *name, size_t len, it_value *v)
	__attribute__((warn_unused_result));
bool it_map_remove(it_value *m, const char *name, size_t len);
/* List append (takes ownership of v). */
bool it_list_append(it_value *l, it_value *v)
	__attribute__((warn_unused_result));

/* Decodes one AttributeValue ({"S":"x"}) with DynamoDB's validation. */
/* PostgreSQL's text and jsonb cannot hold U+0000: strings and attribute
 * names containing it are refused (docs/dynamodb.md), never cut short. */
#define IT_MSG_NUL "One or more parameter values were invalid: attribute names and values containing U+0000 are not supported"

bool it_value_from_json(const json_t *j, it_value **out, it_error *e)
	__attribute__((warn_unused_result));
/* Decodes an item (a JSON object of AttributeValues) into an M value,
 * checking the 400 KB size limit. */
bool it_item_from_json(const json_t *j, it_value **out, it_error *e)
	__attribute__((warn_unused_result));
/* An item stored as DynamoDB JSON text (a jsonb column's text) as an M
 * value; NULL when the text is not one. */
it_value *it_item_from_text(const char *text);
/* Encodes a value / an item (an M value) as DynamoDB JSON; NULL on OOM. */
json_t *it_value_to_json(const it_value *v);
json_t *it_item_to_json(const it_value *item);

/* DynamoDB's limits on a key attribute's S or B value, in bytes. */
#define IT_PARTITION_KEY_MAX 2048
#define IT_SORT_KEY_MAX 1024
/* Checks a key attribute: type (S, N or B), non-empty S/B and its size in
 * its role (sort: a sort key), with DynamoDB's messages. */
bool it_check_key_attr(const char *name, const it_value *v, it_type want,
    bool sort, it_error *e) __attribute__((warn_unused_result));

/* Sizes in bytes as DynamoDB counts them (for the 400 KB limit). */
size_t it_value_size(const it_value *v);
size_t it_item_size(const it_value *item);
bool it_item_check_size(const it_value *item, it_error *e)
	__attribute__((warn_unused_result));

/* Deep equality (sets compare as sets, N numerically). */
bool it_value_equal(const it_value *a, const it_value *b);
/* DynamoDB ordering of two values of the same scalar type (S bytewise UTF-8,
 * N numerically, B bytewise unsigned); 0 for other combinations. */
int it_value_cmp(const it_value *a, const it_value *b);
/* True when a and b can be ordered (same type, one of S, N, B). */
bool it_value_comparable(const it_value *a, const it_value *b);
/* Orders set members of the given set type. */
int it_str_cmp(it_type set_type, const it_str *a, const it_str *b);

/* Set helpers used by the evaluator: membership, union, difference. The
 * result of a difference may be empty (n == 0). */
bool it_set_contains(const it_value *set, const it_str *member);
bool it_set_union(const it_value *a, const it_value *b, it_value **out)
	__attribute__((warn_unused_result));
bool it_set_minus(const it_value *a, const it_value *b, it_value **out)
	__attribute__((warn_unused_result));
/* The element type of a set type: SS -> S, NS -> N, BS -> B. */
it_type it_set_elem_type(it_type set_type);

#endif
