/* outbox.c — the one writer of outbox rows (outbox.h). */
#include "events/outbox.h"

#include <stdio.h>

#include "util/util.h"

static const db_stmt add = {
	"ev_outbox_add",
	"INSERT INTO outbox (n, tenant, id, type, subject, time, data) VALUES (ol_outbox_next_n(), $1, $2, $3, $4, $5, $6)", 6};
const db_stmt *const ev_outbox_stmts[] = {&add, NULL};

bool ev_outbox_add(db_batch *b, const char *tenant, const char *type, const char *subject, const char *data)
{
	if (tenant == NULL || type == NULL || data == NULL)
		return false;
	char id[64], at[40];
	util_new_id("evt_", id, sizeof(id));
	util_format_time(at, sizeof(at), util_now_us());
	const char *p[6] = {tenant, id, type, subject != NULL ? subject : "", at, data};
	return db_batch_add(b, &add, p);
}
