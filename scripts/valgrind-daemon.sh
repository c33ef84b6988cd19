#!/bin/sh
# The daemon under valgrind memcheck, for the integration tests
# (ONCELEDGER_DAEMON=scripts/valgrind-daemon.sh; `make valgrind-check`).
# Any invalid read/write, use of uninitialised memory or definite leak makes
# the process exit 99 instead of 0 at SIGTERM, which fails the test module
# that started it; the report is in the daemon's log (kept on failure).
here=$(cd "$(dirname "$0")/.." && pwd)
# Under memcheck libpq's SCRAM-SHA-256 handshake (4096 PBKDF2 rounds, the
# test stacks' password) takes seconds per connection, and a worker opens its
# pool's connections at once: the default 3 s connect timeout then fails them
# all. A flag on the command line still wins.
ONCELEDGER_DB_CONNECT_TIMEOUT_MS=${ONCELEDGER_DB_CONNECT_TIMEOUT_MS:-30000}
export ONCELEDGER_DB_CONNECT_TIMEOUT_MS
exec valgrind --tool=memcheck --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite \
    --show-leak-kinds=definite --track-fds=no --num-callers=30 --quiet \
    --suppressions="$here/scripts/valgrind.supp" \
    "${VALGRIND_DAEMON:-$here/src/onceledgerd}" "$@"
