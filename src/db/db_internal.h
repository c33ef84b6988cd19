/* db_internal.h — structures shared by the files of the db layer only. */
#ifndef OL_DB_INTERNAL_H
#define OL_DB_INTERNAL_H

#include "db/db.h"

typedef struct db_item {
	const db_stmt *stmt;
	int nparams;
	char **values;
	int *lengths;
	int *formats;
} db_item;

struct db_batch {
	db_item *items;
	int n, cap;
};

#endif
