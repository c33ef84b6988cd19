/* routes.c — the routing table: every route of the API contract with its
 * method, scope and handler. The router enforces the scope before the
 * handler runs, so a route cannot forget its authorisation; tests generate
 * their isolation matrix from this table. Routes whose feature has not
 * landed yet answer 501 not_implemented (after auth, scope and body checks). */
#include "api/app.h"

#include <pthread.h>
#include <stdio.h>

#include "auth/keys.h"

#define NI api_not_implemented

static const route table[] = {
	{HTTP_M_GET, "/healthz", 0, ROUTE_PUBLIC | ROUTE_OPS, ops_healthz},
	{HTTP_M_GET, "/readyz", 0, ROUTE_PUBLIC | ROUTE_OPS, ops_readyz},
	{HTTP_M_GET, "/metrics", 0, ROUTE_PUBLIC | ROUTE_OPS, ops_metrics},
	{HTTP_M_GET, "/v1/whoami", 0, ROUTE_ANY_SCOPE, ops_whoami},

	/* §3 accounts (issue #6) */
	{HTTP_M_POST, "/v1/accounts", SCOPE_WRITE, 0, api_account_create},
	{HTTP_M_GET, "/v1/accounts", SCOPE_READ, 0, api_account_list},
	{HTTP_M_GET, "/v1/accounts/{id}", SCOPE_READ, 0, api_account_get},
	{HTTP_M_POST, "/v1/accounts/{id}/freeze", SCOPE_WRITE, 0, api_account_freeze},
	{HTTP_M_POST, "/v1/accounts/{id}/unfreeze", SCOPE_WRITE, 0, api_account_unfreeze},
	{HTTP_M_POST, "/v1/accounts/{id}/credits", SCOPE_WRITE, 0, api_credit},
	{HTTP_M_POST, "/v1/accounts/{id}/debits", SCOPE_WRITE, 0, api_debit},
	/* §7 history (issue #6) */
	{HTTP_M_GET, "/v1/accounts/{id}/entries", SCOPE_AUDIT, 0, api_entries},
	{HTTP_M_GET, "/v1/accounts/{id}/balance", SCOPE_AUDIT, 0, api_balance_at},
	{HTTP_M_GET, "/v1/accounts/{id}/statement", SCOPE_AUDIT, 0, api_statement},
	{HTTP_M_GET, "/v1/accounts/{id}/verify", SCOPE_AUDIT, 0, api_verify},
	{HTTP_M_GET, "/v1/audit/verify", SCOPE_AUDIT, 0, api_audit_verify},
	/* §4 transfers (issue #6) */
	{HTTP_M_POST, "/v1/transfers", SCOPE_WRITE, 0, api_transfer_create},
	{HTTP_M_POST, "/v1/transfers/batch", SCOPE_WRITE, 0, api_transfer_batch},
	{HTTP_M_GET, "/v1/transfers/{id}", SCOPE_READ, 0, api_transfer_get},
	/* §5 holds (issue #6) */
	{HTTP_M_POST, "/v1/holds", SCOPE_WRITE, 0, api_hold_create},
	{HTTP_M_GET, "/v1/holds/{id}", SCOPE_READ, 0, api_hold_get},
	{HTTP_M_POST, "/v1/holds/{id}/capture", SCOPE_WRITE, 0, api_hold_capture},
	{HTTP_M_POST, "/v1/holds/{id}/void", SCOPE_WRITE, 0, api_hold_void},
	/* §6 orders (issue #7) */
	{HTTP_M_POST, "/v1/orders", SCOPE_WRITE, 0, api_order_create},
	{HTTP_M_GET, "/v1/orders", SCOPE_READ, 0, api_order_list},
	{HTTP_M_GET, "/v1/orders/{id}", SCOPE_READ, 0, api_order_get},
	{HTTP_M_POST, "/v1/orders/{id}/settle", SCOPE_WRITE, 0, api_order_settle},
	{HTTP_M_POST, "/v1/orders/{id}/cancel", SCOPE_WRITE, 0, api_order_cancel},
	{HTTP_M_POST, "/v1/orders/{id}/refund", SCOPE_WRITE, 0, api_order_refund},
	/* §8 events (issue #8) */
	{HTTP_M_GET, "/v1/events", SCOPE_AUDIT, 0, api_events},
	{HTTP_M_GET, "/v1/events/signing-key", SCOPE_AUDIT, 0, api_events_signing_key},
	/* §9 idempotency as a service (issue #5) */
	{HTTP_M_POST, "/v1/idempotency-keys", SCOPE_WRITE, ROUTE_NO_IDEM, api_idem_claim},
	{HTTP_M_GET, "/v1/idempotency-keys/{key}", SCOPE_READ, 0, api_idem_get},
	{HTTP_M_POST, "/v1/idempotency-keys/{key}/complete", SCOPE_WRITE, ROUTE_NO_IDEM, api_idem_complete},
	{HTTP_M_POST, "/v1/idempotency-keys/{key}/release", SCOPE_WRITE, ROUTE_NO_IDEM, api_idem_release},
};

static char names[OL_ARRAY_LEN(table)][96];
static pthread_once_t names_once = PTHREAD_ONCE_INIT;

static void build_names(void)
{
	for (size_t i = 0; i < OL_ARRAY_LEN(table); i++)
		snprintf(names[i], sizeof(names[i]), "%s %s", http_method_name(table[i].method), table[i].pattern);
}

const route *api_routes(size_t *n)
{
	*n = OL_ARRAY_LEN(table);
	return table;
}

const char *api_route_name(int index)
{
	if (index < 0 || index >= (int)OL_ARRAY_LEN(table))
		return "unrouted";
	pthread_once(&names_once, build_names);
	return names[index];
}
