/* api_fakes.h — the layer under the API handlers, replaced for the request
 * decoding fuzz target (fuzz_api_decode.c): every ledger, idempotency and
 * events call checks what decoding promised it (ids, amounts, currencies,
 * text) and answers at once with the outcome the input chose; http_reply
 * records the answer instead of writing it. */
#ifndef OL_FUZZ_API_FAKES_H
#define OL_FUZZ_API_FAKES_H

#include <stdbool.h>
#include <stddef.h>

typedef struct fz_state {
	/* chosen by the input */
	int outcome;      /* an lg_status for the fake layer's answer */
	bool big_numbers; /* history sums as digit strings (past int64) */
	bool key_found;   /* the signing key lookup finds a key */
	/* recorded */
	int layer_calls;  /* calls into the fake layer */
	int answered;     /* the lg_status it answered (the service's and the
			   * events' outcomes mapped onto it) */
	int replies;      /* calls of http_reply */
	int status;
	char *body;       /* malloc'd copy of the reply body */
	size_t body_len;
} fz_state;

extern fz_state fz;

/* The outcomes lg_status has (LG_OK .. LG_INVALID). */
#define FZ_OUTCOMES 13

#endif
