/* The expression lexer: turns an expression into tokens, and formats
 * DynamoDB's "Syntax error; token: ..., near: ..." messages from them. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "items/expr_int.h"

static bool
is_alpha(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool
is_alnum(char c)
{
	return is_alpha(c) || (c >= '0' && c <= '9') || c == '_';
}

static bool
is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Length of the UTF-8 sequence starting at s (1 for a stray byte). */
static size_t
utf8_len(const char *s, size_t left)
{
	unsigned char c = (unsigned char)s[0];
	size_t n = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 1;

	if (n > left)
		n = 1;
	for (size_t i = 1; i < n; i++) {
		if (((unsigned char)s[i] & 0xc0) != 0x80)
			return 1;
	}
	return n;
}

static bool
push(it_toks *t, it_tok_kind k, size_t pos, size_t len, size_t *cap)
{
	if (t->n == *cap) {
		size_t nc = *cap ? *cap * 2 : 16;
		it_tok *nv = realloc(t->v, nc * sizeof(*nv));

		if (nv == NULL)
			return false;
		t->v = nv;
		*cap = nc;
	}
	t->v[t->n].kind = k;
	t->v[t->n].pos = pos;
	t->v[t->n].len = len;
	t->n++;
	return true;
}

bool
it_lex(const char *s, size_t len, it_toks *t)
{
	size_t i = 0, cap = 0;

	memset(t, 0, sizeof(*t));
	t->src = s;
	t->srclen = len;
	while (i < len) {
		size_t st = i;
		it_tok_kind k;
		char c = s[i];

		if (is_space(c)) {
			i++;
			continue;
		}
		if (is_alpha(c)) {
			while (i < len && is_alnum(s[i]))
				i++;
			k = IT_TOK_NAME;
		} else if (c >= '0' && c <= '9') {
			while (i < len && s[i] >= '0' && s[i] <= '9')
				i++;
			k = IT_TOK_NUMBER;
		} else if (c == '#' || c == ':') {
			i++;
			while (i < len && is_alnum(s[i]))
				i++;
			k = i - st == 1 ? IT_TOK_BAD :
			    c == '#' ? IT_TOK_NAMEREF : IT_TOK_VALREF;
		} else {
			i++;
			switch (c) {
			case '(': k = IT_TOK_LPAREN; break;
			case ')': k = IT_TOK_RPAREN; break;
			case '[': k = IT_TOK_LBRACKET; break;
			case ']': k = IT_TOK_RBRACKET; break;
			case ',': k = IT_TOK_COMMA; break;
			case '.': k = IT_TOK_DOT; break;
			case '+': k = IT_TOK_PLUS; break;
			case '-': k = IT_TOK_MINUS; break;
			case '=': k = IT_TOK_EQ; break;
			case '<':
				k = IT_TOK_LT;
				if (i < len && s[i] == '=') {
					k = IT_TOK_LE;
					i++;
				} else if (i < len && s[i] == '>') {
					k = IT_TOK_NE;
					i++;
				}
				break;
			case '>':
				k = IT_TOK_GT;
				if (i < len && s[i] == '=') {
					k = IT_TOK_GE;
					i++;
				}
				break;
			default:
				k = IT_TOK_BAD;
				i = st + utf8_len(s + st, len - st);
				break;
			}
		}
		if (!push(t, k, st, i - st, &cap))
			goto fail;
	}
	if (!push(t, IT_TOK_EOF, len, 0, &cap))
		goto fail;
	return true;
fail:
	it_toks_free(t);
	return false;
}

void
it_toks_free(it_toks *t)
{
	free(t->v);
	t->v = NULL;
	t->n = 0;
}

bool
it_tok_is(const it_toks *t, size_t i, const char *kw)
{
	const it_tok *k = &t->v[i];

	return k->kind == IT_TOK_NAME && strlen(kw) == k->len &&
	    strncasecmp(t->src + k->pos, kw, k->len) == 0;
}

void
it_syntax_error(const it_toks *t, size_t i, it_error *e)
{
	const it_tok *k = &t->v[i];
	size_t from, to;

	/* DynamoDB shows the previous token, the offending one and the next. */
	from = i > 0 ? t->v[i - 1].pos : k->pos;
	if (k->kind == IT_TOK_EOF)
		to = i > 0 ? t->v[i - 1].pos + t->v[i - 1].len : k->pos;
	else if (i + 1 < t->n && t->v[i + 1].kind != IT_TOK_EOF)
		to = t->v[i + 1].pos + t->v[i + 1].len;
	else
		to = k->pos + k->len;
	if (k->kind == IT_TOK_EOF)
		it_error_set(e, IT_ERR_VALIDATION, "Syntax error; token: "
		    "\"<EOF>\", near: \"%.*s\"", (int)(to - from),
		    t->src + from);
	else
		it_error_set(e, IT_ERR_VALIDATION, "Syntax error; token: "
		    "\"%.*s\", near: \"%.*s\"", (int)k->len, t->src + k->pos,
		    (int)(to - from), t->src + from);
}
