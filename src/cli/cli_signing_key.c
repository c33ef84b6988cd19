/* cli_signing_key.c — `onceledger signing-key rotate|list --key-file F`:
 * the event signing keys (docs/events.md "Keys"). rotate appends a new key,
 * which the daemons sign with once they reloaded the file (within seconds);
 * list prints each key's id and public key, the signing one last. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli_common.h"
#include "events/keys.h"

static int usage(void)
{
	fprintf(stderr, "usage: onceledger signing-key rotate|list --key-file FILE (or ONCELEDGER_EVENTS_KEY_FILE)\n");
	return CLI_USAGE;
}

static void print_key(const char *kid, const char *pub, bool signing, void *arg)
{
	(void)arg;
	printf("%s ed25519 %s%s\n", kid, pub, signing ? " signing" : "");
}

int cli_signing_key(int argc, char **argv)
{
	cli_opts o;
	if (!cli_parse(argc, argv, &o) || o.npositional != 1 || o.key_file == NULL || o.key_file[0] == '\0')
		return usage();
	char *err = NULL;
	if (strcmp(o.positional[0], "rotate") == 0) {
		char kid[EV_KID_LEN];
		if (!ev_keys_add(o.key_file, kid, &err)) {
			fprintf(stderr, "onceledger: %s\n", err ? err : "cannot add a key");
			free(err);
			return CLI_FAIL;
		}
		printf("%s\n", kid);
		return CLI_OK;
	}
	if (strcmp(o.positional[0], "list") != 0)
		return usage();
	ev_keys *keys = ev_keys_open(o.key_file, false, &err);
	if (keys == NULL) {
		fprintf(stderr, "onceledger: %s\n", err ? err : "cannot read the key file");
		free(err);
		return CLI_FAIL;
	}
	ev_keys_each(keys, print_key, NULL);
	ev_keys_free(keys);
	return CLI_OK;
}
