/* libFuzzer target: the position of a currency audit's pass that comes back
 * from the client in GET /v1/audit/verify's cursor (src/ledger/audit_cursor.c).
 * The first three bytes are the request's currency, the rest the cursor's
 * JSON. Besides "no crash, no leak": an accepted position is written back
 * as JSON that loads to the same position (what the daemon hands out next). */
#include <assert.h>
#include <stdint.h>
#include <string.h>

#include "ledger/reads.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 3)
		return 0;
	char cur[4] = {(char)data[0], (char)data[1], (char)data[2], '\0'};
	json_t *j = json_loadb((const char *)data + 3, size - 3, JSON_REJECT_DUPLICATES, NULL);
	if (j == NULL)
		return 0;
	lg_audit_pos p;
	if (lg_audit_pos_load(j, cur, &p)) {
		json_t *again = lg_audit_pos_json(&p, cur);
		lg_audit_pos q;
		assert(again != NULL && lg_audit_pos_load(again, cur, &q));
		assert(q.world == p.world && q.accounts == p.accounts && q.sum == p.sum && q.world_sum == p.world_sum &&
		       q.ok == p.ok && (q.after == NULL ? p.after == NULL : p.after != NULL && strcmp(q.after, p.after) == 0) &&
		       strcmp(q.snap, p.snap) == 0);
		lg_audit_pos_clear(&q);
		json_decref(again);
		lg_audit_pos_clear(&p);
	}
	json_decref(j);
	return 0;
}
