/* common.c — helpers every ledger file uses: ids and the JSON text of
 * metadata and saved documents. */
#include "ledger/ledger_int.h"

#include <stdio.h>

#include "util/util.h"

char *lg_dump(const json_t *v)
{
	return json_dumps(v, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENCODE_ANY);
}

void lg_new_id(const char *prefix, char *out, size_t len)
{
	util_new_id(prefix, out, len);
}
