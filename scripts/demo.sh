#!/usr/bin/env bash
# README command 1: installs what is missing, builds, starts a throwaway
# PostgreSQL and Redis under var/demo, applies migrations, creates a demo
# tenant and API key, and runs onceledgerd on 127.0.0.1:8080 in the
# foreground. Ctrl-C stops the daemon, PostgreSQL and Redis.
#   PORT=9090 scripts/demo.sh      # another port
set -euo pipefail
cd "$(dirname "$0")/.."
PORT=${PORT:-8080}
DDB_PORT=${DDB_PORT:-8000}
DIR=var/demo

scripts/install-deps.sh
if [ ! -x src/onceledgerd ] || [ -n "$(find src sql configure.ac Makefile.am -newer src/onceledgerd -print -quit)" ]; then
	echo "demo: building..."
	[ -f configure ] || ./autogen.sh >/dev/null
	[ -f Makefile ] || ./configure -q
	make -j2 >/dev/null
fi

scripts/stack.sh start "$DIR"
trap 'echo; echo "demo: stopping PostgreSQL and Redis"; scripts/stack.sh stop "$DIR"' EXIT
set -a
. "$DIR/env"
set +a

src/onceledger migrate >/dev/null
src/onceledger tenant create demo >/dev/null 2>&1 || true # already there on a second run
KEY=$(src/onceledger key create --tenant demo --scopes read,write,audit)
# The DynamoDB-compatible endpoint seals SigV4 secrets with a master key,
# created private (the daemon and the CLI refuse a key file others may read).
[ -s "$DIR/master.key" ] || (umask 077 && head -c 32 /dev/urandom >"$DIR/master.key")
chmod 600 "$DIR/master.key"
export ONCELEDGER_MASTER_KEY_FILE="$PWD/$DIR/master.key"
AWS_CREDS=$(src/onceledger key create --tenant demo --scopes dynamodb --sigv4)

cat <<BANNER

  onceledger demo — http://127.0.0.1:$PORT   (Ctrl-C stops everything)

  tenant:  demo
  API key: $KEY

  curl -s http://127.0.0.1:$PORT/readyz
  curl -s -H "Authorization: Bearer $KEY" http://127.0.0.1:$PORT/v1/whoami
  curl -s http://127.0.0.1:$PORT/metrics | head

  Money (every POST needs an Idempotency-Key; docs/ledger.md):
  curl -s -X POST http://127.0.0.1:$PORT/v1/accounts -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' \\
       -H "Idempotency-Key: \$(cat /proc/sys/kernel/random/uuid)" -d '{"id":"alice","currency":"EUR"}'
  curl -s -X POST http://127.0.0.1:$PORT/v1/accounts/alice/credits -H "Authorization: Bearer $KEY" \\
       -H 'Content-Type: application/json' -H "Idempotency-Key: \$(cat /proc/sys/kernel/random/uuid)" -d '{"amount":1000}'
  curl -s -H "Authorization: Bearer $KEY" http://127.0.0.1:$PORT/v1/accounts/alice/entries

  Events (docs/events.md): the stream, the replay, the key that signs them:
  redis-cli -u $ONCELEDGER_REDIS_URL XRANGE onceledger:events:demo - +
  curl -s -H "Authorization: Bearer $KEY" http://127.0.0.1:$PORT/v1/events
  curl -s -H "Authorization: Bearer $KEY" http://127.0.0.1:$PORT/v1/events/signing-key

  DynamoDB-compatible endpoint: http://127.0.0.1:$DDB_PORT   (docs/dynamodb.md)
  access key: ${AWS_CREDS% *}
  secret key: ${AWS_CREDS#* }

  /usr/bin/python3 -c 'import boto3; print(boto3.client("dynamodb", endpoint_url="http://127.0.0.1:$DDB_PORT",
      region_name="us-east-1", aws_access_key_id="${AWS_CREDS% *}",
      aws_secret_access_key="${AWS_CREDS#* }").list_tables())'

  PostgreSQL: $ONCELEDGER_DATABASE_URL
  Redis:      $ONCELEDGER_REDIS_URL

BANNER
src/onceledgerd --listen "127.0.0.1:$PORT" --dynamodb-listen "127.0.0.1:$DDB_PORT" --events-key-file "$PWD/$DIR/events.key" || true
