/* ledger_api.h — what the API files of the ledger share: the context of a
 * ledger call made for a request, and the answer to its outcome. */
#ifndef OL_API_LEDGER_API_H
#define OL_API_LEDGER_API_H

#include "api/app.h"
#include "ledger/ledger.h"

static inline lg_ctx api_lg_ctx(http_req *r)
{
	return (lg_ctx){.db = api_worker(r)->db, .tx = api_tx(r), .tenant = api_ctx(r)->who.tenant};
}

/* Replies to a ledger outcome: obj with ok_status on LG_OK (LG_DUPLICATE:
 * 200), else the problem for st with obj's members as extensions. what
 * ("account", "transfer", "hold") names the <what>_not_found and
 * <what>_exists codes. obj is borrowed. */
void api_ledger_reply(http_req *r, lg_status st, json_t *obj, int ok_status, const char *what);
/* The same for an lg_doc_cb: doc, the document's text, is the body as it
 * is on LG_OK and LG_DUPLICATE. */
void api_ledger_reply_doc(http_req *r, lg_status st, json_t *obj, const char *doc, int ok_status, const char *what);

/* A page of a list ({"data", "next"} from the ledger) as
 * {"data": [...], "next_cursor": "..."|null}, or the problem for st. */
void api_list_reply(http_req *r, lg_status st, json_t *obj, const char *what);

#endif
