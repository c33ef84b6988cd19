/* legs.c — one account's part of a money movement as a conditional update
 * (ledger_int.h). The guard and the overflow checks are conditions that
 * PostgreSQL evaluates on the locked row, in the statement that writes it. */
#include "ledger/ledger_int.h"

#include <stdio.h>
#include <string.h>

json_t *lg_leg_action(const lg_leg *l)
{
	char upd[256], cond[256];
	json_t *vals = json_pack("{s:{s:s}}", ":one", "N", "1");
	json_t *names = json_object();
	int64_t dspend = l->dposted - l->dpending;
	/* version counts every change, seq every entry. */
	snprintf(upd, sizeof(upd), "SET version = version + :one%s%s%s", l->dposted ? ", posted = posted + :dp, seq = seq + :one" : "",
		 l->dpending ? ", pending = pending + :dq" : "", dspend ? ", spendable = spendable + :ds" : "");
	if (l->dposted)
		json_object_set_new(vals, ":dp", lg_av_n(l->dposted));
	if (l->dpending)
		json_object_set_new(vals, ":dq", lg_av_n(l->dpending));
	if (dspend)
		json_object_set_new(vals, ":ds", lg_av_n(dspend));
	size_t o = (size_t)snprintf(cond, sizeof(cond), "attribute_exists(PK)");
	if (l->currency != NULL) {
		o += (size_t)snprintf(cond + o, sizeof(cond) - o, " AND #cur = :cur");
		json_object_set_new(names, "#cur", json_string("currency"));
		json_object_set_new(vals, ":cur", lg_av_s(l->currency));
	}
	if (l->active) {
		o += (size_t)snprintf(cond + o, sizeof(cond) - o, " AND #st = :active");
		json_object_set_new(names, "#st", json_string("status"));
		json_object_set_new(vals, ":active", lg_av_s("active"));
	}
	if (l->guard && dspend < 0) {
		o += (size_t)snprintf(cond + o, sizeof(cond) - o, " AND spendable >= :need");
		json_object_set_new(vals, ":need", lg_av_n(-dspend));
	}
	if (l->dposted > 0) {
		o += (size_t)snprintf(cond + o, sizeof(cond) - o, " AND posted <= :pcap");
		json_object_set_new(vals, ":pcap", lg_av_n(INT64_MAX - l->dposted));
	}
	if (l->dpending > 0) {
		o += (size_t)snprintf(cond + o, sizeof(cond) - o, " AND pending <= :qcap");
		json_object_set_new(vals, ":qcap", lg_av_n(INT64_MAX - l->dpending));
	}
	json_t *u = json_pack("{s:s, s:o, s:s, s:s, s:o, s:s}", "TableName", IT_SYSTEM_TABLE, "Key",
			      lg_key("ACCOUNT#", l->account, "METADATA"), "UpdateExpression", upd, "ConditionExpression", cond,
			      "ExpressionAttributeValues", vals, "ReturnValuesOnConditionCheckFailure", "ALL_OLD");
	if (json_object_size(names) > 0)
		json_object_set(u, "ExpressionAttributeNames", names);
	json_decref(names);
	return json_pack("{s:o}", "Update", u);
}

lg_status lg_leg_failure(const lg_leg *l, const json_t *old, int *rank, json_t **extra)
{
	*extra = NULL;
	if (old == NULL) {
		*rank = 1;
		*extra = json_pack("{s:s}", "account", l->account);
		return LG_NOT_FOUND;
	}
	const char *cur = lg_s(old, "currency");
	if (l->currency != NULL && (cur == NULL || strcmp(cur, l->currency) != 0)) {
		*rank = 2;
		*extra = json_pack("{s:s, s:s?}", "account", l->account, "account_currency", cur);
		return LG_CURRENCY_MISMATCH;
	}
	const char *st = lg_s(old, "status");
	if (l->active && (st == NULL || strcmp(st, "active") != 0)) {
		*rank = 3;
		*extra = json_pack("{s:s}", "account", l->account);
		return LG_FROZEN;
	}
	int64_t dspend = l->dposted - l->dpending;
	/* spendable itself may exceed int64 (posted + overdraft_limit). */
	__int128 spendable = (__int128)lg_n(old, "posted") - lg_n(old, "pending") + lg_n(old, "overdraft_limit");
	if (l->guard && dspend < 0 && spendable < -(__int128)dspend) {
		*rank = 4;
		*extra = json_pack("{s:s, s:I, s:I}", "account", l->account, "available",
				   (json_int_t)(lg_n(old, "posted") - lg_n(old, "pending")), "overdraft_limit",
				   (json_int_t)lg_n(old, "overdraft_limit"));
		return LG_INSUFFICIENT;
	}
	if ((l->dposted > 0 && lg_n(old, "posted") > INT64_MAX - l->dposted) ||
	    (l->dpending > 0 && lg_n(old, "pending") > INT64_MAX - l->dpending)) {
		*rank = 5;
		*extra = json_pack("{s:s}", "account", l->account);
		return LG_OVERFLOW;
	}
	*rank = 9; /* the condition failed for no reason we can see: retry */
	return LG_UNAVAILABLE;
}

json_t *lg_check_action(const char *account, const char *currency)
{
	return json_pack("{s:{s:s, s:o, s:s, s:{s:s}, s:{s:o}, s:s}}", "ConditionCheck", "TableName", IT_SYSTEM_TABLE, "Key",
			 lg_key("ACCOUNT#", account, "METADATA"), "ConditionExpression", "attribute_exists(PK) AND #cur = :cur",
			 "ExpressionAttributeNames", "#cur", "currency", "ExpressionAttributeValues", ":cur", lg_av_s(currency),
			 "ReturnValuesOnConditionCheckFailure", "ALL_OLD");
}
