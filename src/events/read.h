/* read.h — a tenant's events replayed from the outbox (GET /v1/events):
 * the same CloudEvents as in its stream, in stream order, below the same
 * watermark as the relay so that a page never has a hole that fills in
 * later. */
#ifndef OL_EVENTS_READ_H
#define OL_EVENTS_READ_H

#include <stdint.h>

#include <jansson.h>

#include "db/db.h"

/* err is NULL on success, when page is {"data": [...], "next_cursor":
 * "<sequence>"|null} (borrowed). */
typedef void (*ev_read_cb)(const db_result *err, json_t *page, void *arg);

void ev_read(db_pool *db, const char *tenant, uint64_t after_txid, int after_n, int limit, ev_read_cb cb, void *arg);

#endif
