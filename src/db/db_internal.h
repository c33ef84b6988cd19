/* db_internal.h — structures shared by the files of the db layer only. */
#ifndef OL_DB_INTERNAL_H
#define OL_DB_INTERNAL_H

#include "db/db.h"

typedef struct db_item {
	const char *name;  /* prepared statement name */
	const char *sql;
	char *owned_sql;   /* dynamic statements own their text */
	char dyn_name[24];
	int nparams;
	char **values;
	int *lengths;
	int *formats;
} db_item;

/* The prepared statement name of an item (static or derived from its text). */
static inline const char *db_item_name(const db_item *it)
{
	return it->name != NULL ? it->name : it->dyn_name;
}

struct db_batch {
	db_item *items;
	int n, cap;
};

#endif
