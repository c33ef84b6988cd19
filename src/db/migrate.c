/* migrate.c — applies embedded migrations one transaction each, under an
 * advisory lock so that two migrators started at once do not race; a
 * checksum recorded per file refuses a migration edited after it ran. */
#include "db/migrate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

/* An arbitrary constant naming the migration lock. */
#define MIG_LOCK_KEY "7311429001"

static bool run(PGconn *pg, const char *sql, char **err)
{
	PGresult *r = PQexec(pg, sql);
	ExecStatusType st = PQresultStatus(r);
	bool ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
	if (!ok && asprintf(err, "%s", PQresultErrorMessage(r)) < 0)
		*err = NULL;
	PQclear(r);
	return ok;
}

static void checksum_hex(const char *sql, char out[65])
{
	unsigned char h[32];
	crypto_generichash(h, sizeof(h), (const unsigned char *)sql, strlen(sql), NULL, 0);
	sodium_bin2hex(out, 65, h, sizeof(h));
}

bool mig_apply(PGconn *pg, int *applied, char **err)
{
	*applied = 0;
	*err = NULL;
	if (sodium_init() < 0) {
		*err = strdup("libsodium failed to initialise");
		return false;
	}
	if (!run(pg, "SET client_min_messages = warning", err) ||
	    !run(pg, "SELECT pg_advisory_lock(" MIG_LOCK_KEY ")", err))
		return false;
	bool ok = run(pg,
		      "CREATE TABLE IF NOT EXISTS schema_migrations ("
		      " version text PRIMARY KEY,"
		      " checksum text NOT NULL,"
		      " applied_at timestamptz NOT NULL DEFAULT now())",
		      err);
	for (int i = 0; ok && i < mig_nfiles; i++) {
		const mig_file *m = &mig_files[i];
		char sum[65];
		checksum_hex(m->sql, sum);
		const char *params[1] = {m->name};
		PGresult *r = PQexecParams(pg, "SELECT checksum FROM schema_migrations WHERE version = $1", 1, NULL,
					   params, NULL, NULL, 0);
		if (PQresultStatus(r) != PGRES_TUPLES_OK) {
			if (asprintf(err, "%s", PQresultErrorMessage(r)) < 0)
				*err = NULL;
			PQclear(r);
			ok = false;
			break;
		}
		if (PQntuples(r) == 1) {
			bool same = strcmp(PQgetvalue(r, 0, 0), sum) == 0;
			PQclear(r);
			if (!same) {
				if (asprintf(err, "migration %s was changed after it was applied (checksum differs)", m->name) < 0)
					*err = NULL;
				ok = false;
			}
			continue;
		}
		PQclear(r);
		ok = run(pg, "BEGIN", err) && run(pg, m->sql, err);
		if (ok) {
			const char *ins[2] = {m->name, sum};
			r = PQexecParams(pg, "INSERT INTO schema_migrations (version, checksum) VALUES ($1, $2)", 2, NULL,
					 ins, NULL, NULL, 0);
			ok = PQresultStatus(r) == PGRES_COMMAND_OK;
			if (!ok && asprintf(err, "%s", PQresultErrorMessage(r)) < 0)
				*err = NULL;
			PQclear(r);
		}
		if (ok && run(pg, "COMMIT", err)) {
			(*applied)++;
		} else {
			char *ignored = NULL;
			if (!run(pg, "ROLLBACK", &ignored))
				free(ignored);
			if (*err != NULL) {
				char *wrapped = NULL;
				if (asprintf(&wrapped, "migration %s failed: %s", m->name, *err) >= 0) {
					free(*err);
					*err = wrapped;
				}
			}
			ok = false;
		}
	}
	char *ignored = NULL;
	if (!run(pg, "SELECT pg_advisory_unlock(" MIG_LOCK_KEY ")", &ignored))
		free(ignored);
	return ok;
}
