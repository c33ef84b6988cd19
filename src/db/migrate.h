/* migrate.h — schema migrations compiled into the binaries from sql/ and
 * applied in order by `onceledger migrate`, each recorded in
 * schema_migrations; re-running changes nothing. */
#ifndef OL_DB_MIGRATE_H
#define OL_DB_MIGRATE_H

#include <stdbool.h>

#include <libpq-fe.h>

#include "util/util.h"

typedef struct mig_file {
	const char *name;
	const char *sql;
} mig_file;

extern const mig_file mig_files[];
extern const int mig_nfiles;

/* Applies pending migrations on a blocking connection. *applied counts the
 * files applied by this call. */
bool mig_apply(PGconn *pg, int *applied, char **err) OL_WARN_UNUSED;

#endif
