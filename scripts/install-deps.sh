#!/bin/sh
# Install every Debian package onceledger needs to build, run, test, benchmark
# and fuzz.  Idempotent: checks with dpkg-query first and only touches apt
# when something is missing; prints nothing when everything is installed.
set -eu

PACKAGES="
build-essential autoconf automake libtool pkg-config
libevent-dev libpq-dev libjansson-dev libsodium-dev libhiredis-dev
postgresql-15 postgresql-contrib-15 redis-server
python3-pytest python3-requests python3-psycopg2 python3-redis python3-nacl python3-boto3 curl
python3-jsonschema python3-yaml jq xxd
wrk
clang libclang-rt-14-dev
valgrind
man-db systemd prometheus python3-yaml nginx openssl
"

# Names provided by installed packages (e.g. postgresql-contrib-15 is a
# virtual package provided by postgresql-15 on Debian 12).
provided=$(dpkg-query -W -f='${db:Status-Abbrev}|${Provides}\n' 2>/dev/null |
    sed -n 's/^ii *|//p' | tr ',' '\n' | sed 's/(.*)//; s/^ *//; s/ *$//' |
    grep -v '^$' || true)

missing=""
for p in $PACKAGES; do
    status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
    case "$status" in
        *" installed") continue ;;
    esac
    if printf '%s\n' "$provided" | grep -qx -- "$p"; then
        continue
    fi
    missing="$missing $p"
done

# Node.js and npm run the AWS SDK tests of the DynamoDB endpoint (tests/sdk).
# A machine that already has both (any origin) keeps them; otherwise
# Debian's packages are installed.
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    missing="$missing nodejs npm"
fi

[ -z "$missing" ] && exit 0

echo "install-deps: installing:$missing" >&2

if [ "$(id -u)" -eq 0 ]; then
    SUDO=""
elif command -v sudo >/dev/null 2>&1; then
    # no TTY: never wait for a password prompt
    if [ -t 0 ]; then SUDO="sudo"; else SUDO="sudo -n"; fi
else
    echo "install-deps: not root and sudo is not available; install:$missing" >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
# shellcheck disable=SC2086
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
    --no-install-recommends \
    -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
    $missing
