/* DynamoDB expressions: the AST of ConditionExpression, FilterExpression,
 * KeyConditionExpression, UpdateExpression and ProjectionExpression, and the
 * calls that parse, resolve (#name / :value placeholders) and check them with
 * DynamoDB's rules and messages. The AST owns copies of every value it uses,
 * so it outlives the request's ExpressionAttributeValues. */
#ifndef IT_EXPR_H
#define IT_EXPR_H

#include <stdbool.h>
#include <stddef.h>
#include <jansson.h>

#include "items/error.h"
#include "items/value.h"

#define IT_EXPR_MAX_LEN 4096	/* bytes, any expression */
#define IT_EXPR_MAX_IN 100	/* operands on the right of IN */
#define IT_EXPR_MAX_PATH_DEPTH 32

typedef enum it_expr_kind {
	IT_EXPR_CONDITION,	/* ConditionExpression */
	IT_EXPR_FILTER,		/* FilterExpression */
	IT_EXPR_KEYCOND,	/* KeyConditionExpression */
	IT_EXPR_UPDATE,		/* UpdateExpression */
	IT_EXPR_PROJECTION,	/* ProjectionExpression */
} it_expr_kind;

/* "ConditionExpression", ... as DynamoDB names them in messages. */
const char *it_expr_kind_name(it_expr_kind k);

/* One element of a document path: an attribute name or a list index. */
typedef struct it_pathel {
	bool is_index;
	size_t index;
	it_str name;		/* resolved attribute name (not for indexes) */
	bool is_ref;		/* written as #ref (name holds the ref until
				 * resolved) */
	size_t pos;		/* offset in the source */
} it_pathel;

typedef struct it_path {
	it_pathel *v;
	size_t n;
} it_path;

typedef enum it_node_kind {
	IT_NODE_PATH,		/* operand: document path */
	IT_NODE_VALUE,		/* operand: :value */
	IT_NODE_CMP,		/* args[0] cmp args[1] */
	IT_NODE_BETWEEN,	/* args[0] BETWEEN args[1] AND args[2] */
	IT_NODE_IN,		/* args[0] IN (args[1..]) */
	IT_NODE_AND,
	IT_NODE_OR,
	IT_NODE_NOT,
	IT_NODE_CALL,		/* func(args...) */
	IT_NODE_PLUS,		/* update value: args[0] + args[1] */
	IT_NODE_MINUS,		/* update value: args[0] - args[1] */
} it_node_kind;

typedef enum it_cmp { IT_EQ, IT_NE, IT_LT, IT_LE, IT_GT, IT_GE } it_cmp;

typedef enum it_func {
	IT_FN_UNKNOWN,
	IT_FN_ATTRIBUTE_EXISTS,
	IT_FN_ATTRIBUTE_NOT_EXISTS,
	IT_FN_ATTRIBUTE_TYPE,
	IT_FN_BEGINS_WITH,
	IT_FN_CONTAINS,
	IT_FN_SIZE,
	IT_FN_IF_NOT_EXISTS,
	IT_FN_LIST_APPEND,
} it_func;

typedef struct it_node {
	it_node_kind kind;
	it_cmp cmp;		/* IT_NODE_CMP */
	it_func func;		/* IT_NODE_CALL */
	char *fname;		/* IT_NODE_CALL: the name as written */
	struct it_node **args;
	size_t nargs;
	it_path path;		/* IT_NODE_PATH */
	char *ref;		/* IT_NODE_VALUE: ":name" */
	it_value *value;	/* IT_NODE_VALUE: resolved copy */
	size_t pos;		/* offset of the node in the source */
	int parens;		/* parentheses directly around this node */
} it_node;

typedef enum it_uact_kind {
	IT_UPD_SET, IT_UPD_REMOVE, IT_UPD_ADD, IT_UPD_DELETE
} it_uact_kind;

typedef struct it_uaction {
	it_uact_kind kind;
	int section;		/* ordinal of its clause in the expression */
	it_path path;
	it_node *value;		/* SET: value expression; ADD/DELETE: :value */
} it_uaction;

typedef struct it_update {
	it_uaction *v;		/* in source order, sections concatenated */
	size_t n;
} it_update;

typedef struct it_projection {
	it_path *v;
	size_t n;
} it_projection;

/* The ExpressionAttributeNames / ExpressionAttributeValues of one request,
 * with the record of which were used by its expressions. */
typedef struct it_param {
	char *key;		/* "#n" or ":v" */
	char *name;		/* names: the attribute name */
	size_t name_len;
	it_value *value;	/* values: decoded */
	bool used;
} it_param;

typedef struct it_params {
	it_param *names;
	size_t nnames;
	it_param *values;
	size_t nvalues;
} it_params;

/* Validates and decodes ExpressionAttributeNames / ExpressionAttributeValues
 * (either may be NULL when absent from the request). */
bool it_params_init(it_params *p, const json_t *names, const json_t *values,
    it_error *e) __attribute__((warn_unused_result));
void it_params_free(it_params *p);
/* After every expression of the request is parsed: rejects placeholders
 * that no expression used, as DynamoDB does. */
bool it_params_check_unused(const it_params *p, it_error *e)
	__attribute__((warn_unused_result));

/* Condition, filter and key condition expressions (kind selects the message
 * prefix and, for IT_EXPR_KEYCOND, the restricted forms). */
bool it_parse_condition(it_expr_kind kind, const char *src, size_t len,
    it_params *p, it_node **out, it_error *e)
	__attribute__((warn_unused_result));
bool it_parse_update(const char *src, size_t len, it_params *p,
    it_update **out, it_error *e) __attribute__((warn_unused_result));
bool it_parse_projection(const char *src, size_t len, it_params *p,
    it_projection **out, it_error *e) __attribute__((warn_unused_result));

void it_node_free(it_node *n);
void it_update_free(it_update *u);
void it_projection_free(it_projection *p);
void it_path_clear(it_path *p);

/* A KeyConditionExpression reduced to its key conditions. */
typedef enum it_keyop {
	IT_KEY_EQ, IT_KEY_LT, IT_KEY_LE, IT_KEY_GT, IT_KEY_GE,
	IT_KEY_BETWEEN, IT_KEY_BEGINS_WITH
} it_keyop;

typedef struct it_keycond {
	const it_str *name;	/* borrowed from the AST */
	it_keyop op;
	const it_value *v1, *v2;	/* v2 only for BETWEEN */
} it_keycond;

/* Binds a parsed KeyConditionExpression to the key schema (sk may be NULL):
 * *pkc gets the partition key condition (always =), *skc the sort key
 * condition or op-less (name NULL) when absent. */
bool it_keycond_bind(const it_node *root, const char *pk, const char *sk,
    it_keycond *pkc, it_keycond *skc, it_error *e)
	__attribute__((warn_unused_result));

/* Formats a path as DynamoDB prints it in messages: "[a, b, [2]]". */
char *it_path_str(const it_path *p);
/* Formats a path in expression syntax: "a.b[2]" (for logs and tests). */
char *it_path_expr(const it_path *p);
/* True when the update writes (SET/REMOVE/ADD/DELETE) top-level name. */
bool it_update_touches(const it_update *u, const char *name, size_t len);
/* True when a condition reads top-level attribute `name` anywhere. */
bool it_node_references(const it_node *n, const char *name, size_t len);

/* Internal to the expression modules. */
bool it_reserved_word(const char *s, size_t len);

#endif
