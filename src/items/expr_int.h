/* Internals shared by the expression lexer, parser and checker; not part of
 * the item layer's interface. */
#ifndef IT_EXPR_INT_H
#define IT_EXPR_INT_H

#include "items/expr.h"

typedef enum it_tok_kind {
	IT_TOK_EOF,
	IT_TOK_NAME,		/* [A-Za-z][A-Za-z0-9_]* (keywords too) */
	IT_TOK_NAMEREF,		/* #[A-Za-z0-9_]+ */
	IT_TOK_VALREF,		/* :[A-Za-z0-9_]+ */
	IT_TOK_NUMBER,		/* [0-9]+ (list indexes) */
	IT_TOK_LPAREN, IT_TOK_RPAREN, IT_TOK_LBRACKET, IT_TOK_RBRACKET,
	IT_TOK_COMMA, IT_TOK_DOT, IT_TOK_PLUS, IT_TOK_MINUS,
	IT_TOK_EQ, IT_TOK_NE, IT_TOK_LT, IT_TOK_LE, IT_TOK_GT, IT_TOK_GE,
	IT_TOK_BAD,		/* anything else: a syntax error when reached */
} it_tok_kind;

typedef struct it_tok {
	it_tok_kind kind;
	size_t pos, len;
} it_tok;

typedef struct it_toks {
	it_tok *v;
	size_t n;		/* including the final EOF token */
	const char *src;
	size_t srclen;
} it_toks;

bool it_lex(const char *src, size_t len, it_toks *t)
	__attribute__((warn_unused_result));
void it_toks_free(it_toks *t);
/* Case-insensitive keyword test of a NAME token. */
bool it_tok_is(const it_toks *t, size_t i, const char *kw);
/* Records DynamoDB's syntax error at token i: token "x", near "...". */
void it_syntax_error(const it_toks *t, size_t i, it_error *e);

/* A path element before resolution: bare name, #ref or index. */
typedef struct it_rawel {
	it_tok_kind kind;	/* NAME, NAMEREF or NUMBER */
	size_t pos, len;	/* source text */
	size_t index;
} it_rawel;

/* Parser output: the AST with unresolved path elements kept beside it. */
it_node *it_node_new(it_node_kind kind, size_t pos);
bool it_node_push(it_node *n, it_node *arg) __attribute__((warn_unused_result));
bool it_path_push(it_path *p, const it_pathel *el)
	__attribute__((warn_unused_result));

/* Runs the parser for one kind; on a syntax error reports it at the
 * furthest token reached. *out is an it_node, it_update or it_projection. */
bool it_parse_raw(it_expr_kind kind, const it_toks *t, void **out,
    it_error *e) __attribute__((warn_unused_result));

#endif
