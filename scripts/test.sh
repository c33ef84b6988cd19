#!/usr/bin/env bash
# README command 2: installs what is missing, builds, and runs every test
# suite; the last line is "N passed, N failed" summed over all suites, and
# the exit status is non-zero when anything failed. .ci/run calls this.
#
#   scripts/test.sh                 # everything (what CI runs)
#   scripts/test.sh quick           # the developer's loop: unit, db, integration
#   SUITES="unit integration" scripts/test.sh
#   FUZZ_SECONDS=60 scripts/test.sh
#
# Suites: unit (C unit tests), db (C tests of the item layer, and the Python
# test of the relational ledger's prototype SQL, against a real PostgreSQL
# started for them), integration (pytest against the real daemon,
# PostgreSQL and Redis), sdk (the DynamoDB endpoint driven by the AWS SDK v3
# for JavaScript, tests/sdk), asan (unit + db + integration + sdk + chaos on
# an ASan/UBSan build), fuzz (each libFuzzer target for FUZZ_SECONDS on its
# corpus),
# chaos (tests/chaos: three daemons killed and restarted, PostgreSQL and
# Redis restarted, under load for CHAOS_SECONDS, then every invariant),
# valgrind (`make valgrind-check`: the integration suite with the daemon under
# memcheck; an invalid access or a definite leak fails them).
#
# `quick` runs unit, db and integration only (no chaos, valgrind, sdk, ASan
# or fuzzing); `full` (the default) runs every suite. SUITES, when set,
# overrides either.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
case ${1:-full} in
quick) default_suites="unit db integration" ;;
full) default_suites="unit db integration chaos valgrind sdk asan fuzz" ;;
*)
	echo "usage: scripts/test.sh [quick|full]"
	echo "0 passed, 1 failed"
	exit 2
	;;
esac
if [ $# -gt 1 ]; then
	echo "usage: scripts/test.sh [quick|full]"
	echo "0 passed, 1 failed"
	exit 2
fi
SUITES=${SUITES:-$default_suites}
FUZZ_SECONDS=${FUZZ_SECONDS:-60}
JOBS=${JOBS:-2}
PY=/usr/bin/python3   # Debian's python3-* packages live here
OUT="$ROOT/var/test"
mkdir -p "$OUT"

total_pass=0
total_fail=0
report() { # suite passed failed
	echo "== $1: $2 passed, $3 failed"
	total_pass=$((total_pass + $2))
	total_fail=$((total_fail + $3))
}

if ! scripts/install-deps.sh; then
	echo "test.sh: installing dependencies failed"
	echo "0 passed, 1 failed"
	exit 1
fi

# Builds a tree (in place, or a copy of the tracked files in DIR) with the
# given configure flags. Copies keep the in-tree build untouched: automake
# refuses two configured builds of one source directory.
build_tree() { # dir configure-args...
	local dir=$1
	shift
	if [ "$dir" != "$ROOT" ]; then
		mkdir -p "$dir"
		(git ls-files -z --cached --others --exclude-standard | tar --null -T - -cf - | tar -C "$dir" -xf -) || return 1
	fi
	(
		cd "$dir" || exit 1
		if [ ! -f configure ] || [ configure.ac -nt configure ] || [ Makefile.am -nt Makefile.in ]; then
			./autogen.sh >autogen.log 2>&1 || { cat autogen.log; exit 1; }
		fi
		if [ ! -f Makefile ] || [ configure -nt Makefile ] || [ "$(cat .configured-with 2>/dev/null)" != "$*" ]; then
			./configure -q "$@" >configure.log 2>&1 || { cat configure.log; exit 1; }
			echo "$*" >.configured-with
		fi
		make -j"$JOBS" >make.log 2>&1 || { tail -50 make.log; exit 1; }
	)
}

# Sums "ok N"/"not ok N" lines of the TAP-ish unit test logs in a tree.
unit_suite() { # name dir
	local name=$1 dir=$2
	(cd "$dir" && make -j"$JOBS" check >"$OUT/$name-check.log" 2>&1)
	local rc=$?
	local p f
	p=$(cat "$dir"/tests/unit/test_*.log 2>/dev/null | grep -cE '^ok [0-9]+')
	f=$(cat "$dir"/tests/unit/test_*.log 2>/dev/null | grep -cE '^not ok [0-9]+')
	if [ $rc -ne 0 ] && [ "$f" -eq 0 ]; then
		f=1 # a crash or a build failure counts
		grep -E '^(FAIL|ERROR)' "$OUT/$name-check.log"
	fi
	[ "$f" -gt 0 ] && grep -h -B2 -A3 '^not ok' "$dir"/tests/unit/test_*.log | head -60
	report "$name" "$p" "$f"
}

# Builds the database tests of a tree and runs each against a throwaway
# PostgreSQL (started once per test run, stopped on exit).
DB_STACK="$OUT/stack-db"
db_stack_up() {
	if [ -z "${ONCELEDGER_TEST_DATABASE_URL:-}" ]; then
		# a fresh cluster every run: migrations are applied from scratch
		scripts/stack.sh stop "$DB_STACK" >/dev/null 2>&1
		rm -rf "$DB_STACK"
		scripts/stack.sh start "$DB_STACK" >"$OUT/stack-db.log" 2>&1 || { cat "$OUT/stack-db.log"; return 1; }
		trap 'scripts/stack.sh stop "$DB_STACK" >/dev/null 2>&1' EXIT
		ONCELEDGER_TEST_DATABASE_URL=$(. "$DB_STACK/env" && echo "$ONCELEDGER_DATABASE_URL")
		export ONCELEDGER_TEST_DATABASE_URL
	fi
}

db_suite() { # name dir
	local name=$1 dir=$2 p=0 f=0
	if ! db_stack_up; then
		report "$name" 0 1
		return
	fi
	if ! (cd "$dir" && make -j"$JOBS" db-tests >"$OUT/$name-build.log" 2>&1); then
		tail -30 "$OUT/$name-build.log"
		report "$name" 0 1
		return
	fi
	for t in "$dir"/tests/db/test_*; do
		[ -x "$t" ] && [ -f "$t" ] || continue
		case $t in *.c | *.o | *.h) continue ;; esac
		local log="$OUT/$name-$(basename "$t").log"
		timeout 900 "$t" >"$log" 2>&1
		local rc=$?
		local tp tf
		tp=$(grep -cE '^ok [0-9]+' "$log")
		tf=$(grep -cE '^not ok [0-9]+' "$log")
		if [ $rc -eq 77 ]; then
			echo "   $(basename "$t"): skipped"
			continue
		fi
		if [ $rc -ne 0 ] && [ "$tf" -eq 0 ]; then
			tf=1
			tail -20 "$log"
		fi
		[ "$tf" -gt 0 ] && grep -A3 '^not ok' "$log" | head -40
		echo "   $(basename "$t"): $tp passed, $tf failed"
		p=$((p + tp))
		f=$((f + tf))
	done
	report "$name" "$p" "$f"
}

# Runs pytest with a JUnit report and counts its cases.
pytest_suite() { # name extra-env...
	local name=$1
	shift
	local xml="$OUT/$name.xml"
	local -a where=(tests/integration)
	case $name in *chaos) where=(-s tests/chaos) ;; esac # -s: its summary line
	rm -f "$xml"
	if [ "$name" = valgrind ]; then
		timeout 2700 make -s valgrind-check VALGRIND_PYTEST_ARGS="--junitxml=$xml" >"$OUT/$name.log" 2>&1
	else
		env "$@" timeout 1800 "$PY" -m pytest -q -p no:cacheprovider --junitxml="$xml" "${where[@]}" \
			>"$OUT/$name.log" 2>&1
	fi
	local rc=$?
	tail -25 "$OUT/$name.log"
	local counts
	counts=$("$PY" - "$xml" <<'PYEOF'
import sys, xml.etree.ElementTree as ET
try:
    root = ET.parse(sys.argv[1]).getroot()
except Exception:
    print("0 0 0"); sys.exit()
suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
t = sum(int(s.get("tests", 0)) for s in suites)
f = sum(int(s.get("failures", 0)) + int(s.get("errors", 0)) for s in suites)
k = sum(int(s.get("skipped", 0)) for s in suites)
print(t - f - k, f, k)
PYEOF
)
	local p f k
	read -r p f k <<<"$counts"
	if [ $rc -ne 0 ] && [ "$f" -eq 0 ]; then
		f=1 # pytest itself failed (collection error, timeout, no tests)
	fi
	[ "$k" -gt 0 ] && echo "   ($k skipped)"
	report "$name" "$p" "$f"
}

# The DynamoDB endpoint driven by the real AWS SDK v3 (node:test).
sdk_suite() { # name extra-env...
	local name=$1
	shift
	[ -x tests/sdk/run.sh ] || return 0
	env "$@" tests/sdk/run.sh >"$OUT/$name.log" 2>&1
	local rc=$? sp sf
	tail -30 "$OUT/$name.log"
	sp=$(grep -E '^# pass [0-9]+' "$OUT/$name.log" | tail -1 | grep -oE '[0-9]+' || echo 0)
	sf=$(grep -E '^# fail [0-9]+' "$OUT/$name.log" | tail -1 | grep -oE '[0-9]+' || echo 0)
	# run.sh's own skip line has a colon; node's summary says '# skipped 0'
	if grep -q '^# skipped:' "$OUT/$name.log"; then
		echo "   $name: skipped (node or npm missing)"
	elif [ $rc -ne 0 ] && [ "${sf:-0}" -eq 0 ]; then
		sf=1
	fi
	report "$name" "${sp:-0}" "${sf:-0}"
}

echo "== build"
if ! build_tree "$ROOT" --enable-werror; then
	echo "0 passed, 1 failed"
	exit 1
fi

for suite in $SUITES; do
	case $suite in
	unit)
		unit_suite unit "$ROOT"
		;;
	db)
		db_suite db "$ROOT"
		;;
	integration)
		pytest_suite integration
		;;
	chaos)
		pytest_suite chaos CHAOS_SECONDS="${CHAOS_SECONDS:-90}"
		;;
	valgrind)
		pytest_suite valgrind
		;;
	sdk)
		sdk_suite sdk
		;;
	asan)
		echo "== asan build"
		if build_tree "$ROOT/var/build-asan" --enable-asan --enable-werror; then
			export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
			export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
			unit_suite asan-unit "$ROOT/var/build-asan"
			db_suite asan-db "$ROOT/var/build-asan"
			pytest_suite asan-integration ONCELEDGER_DAEMON="$ROOT/var/build-asan/src/onceledgerd" \
				ONCELEDGER_CLI="$ROOT/var/build-asan/src/onceledger"
			sdk_suite asan-sdk ONCELEDGER_DAEMON="$ROOT/var/build-asan/src/onceledgerd" \
				ONCELEDGER_CLI="$ROOT/var/build-asan/src/onceledger"
			pytest_suite asan-chaos CHAOS_SECONDS="${CHAOS_SECONDS:-90}" \
				ONCELEDGER_DAEMON="$ROOT/var/build-asan/src/onceledgerd" \
				ONCELEDGER_CLI="$ROOT/var/build-asan/src/onceledger"
		else
			report asan-build 0 1
		fi
		;;
	fuzz)
		echo "== fuzz build (clang, libFuzzer)"
		if build_tree "$ROOT/var/build-fuzz" CC=clang --enable-fuzzing && (cd "$ROOT/var/build-fuzz" && make -j"$JOBS" fuzz >>make.log 2>&1); then
			fp=0
			ff=0
			for t in "$ROOT"/var/build-fuzz/fuzz/fuzz_*; do
				[ -x "$t" ] || continue
				n=$(basename "$t")
				short=${n#fuzz_}
				corpus_src="$ROOT/fuzz/corpus/$short"
				work="$OUT/fuzz-$short"
				rm -rf "$work"
				mkdir -p "$work"
				[ -d "$corpus_src" ] && cp -r "$corpus_src"/. "$work"/
				dict=()
				[ -f "$ROOT/fuzz/$short.dict" ] && dict=(-dict="$ROOT/fuzz/$short.dict")
				if (cd "$OUT" && "$t" "${dict[@]}" -max_total_time="$FUZZ_SECONDS" -timeout=10 -rss_limit_mb=2048 \
					-print_final_stats=1 "$work" >"$OUT/$n.log" 2>&1); then
					echo "   $n: ok ($(grep -m1 -o 'stat::number_of_executed_units: *[0-9]*' "$OUT/$n.log" | grep -o '[0-9]*$') runs in ${FUZZ_SECONDS}s)"
					fp=$((fp + 1))
				else
					echo "   $n: FAILED"
					tail -40 "$OUT/$n.log"
					ff=$((ff + 1))
				fi
			done
			report fuzz "$fp" "$ff"
		else
			tail -30 "$ROOT/var/build-fuzz/make.log" 2>/dev/null
			report fuzz-build 0 1
		fi
		;;
	*)
		echo "test.sh: unknown suite $suite"
		report "$suite" 0 1
		;;
	esac
done

echo "$total_pass passed, $total_fail failed"
[ "$total_fail" -eq 0 ]
