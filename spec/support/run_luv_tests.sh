#!/bin/sh
# spec/support/run_luv_tests.sh INTERP DIR [test-name...]
# Runs luv's own test suite (the tests/ and lib/ of a luvit/luv checkout in
# DIR, fetched by hand: it is third-party code and is never committed here)
# under INTERP, each tests/test-*.lua file as its own process, in a private
# network namespace when the machine allows it. INTERP is build/luahost, or
# "lua5.4" to measure the reference (Debian's lua-luv). Prints each file's
# count and the total "X of N pass". Not part of `make test`.
set -u
interp=$1
dir=$2
shift 2
case "$interp" in */*) interp=$(cd "$(dirname "$interp")" && pwd)/$(basename "$interp") ;; esac

if [ "${LUAHOST_NETNS:-}" != 1 ] && unshare -n sh -c 'ip link set lo up' 2>/dev/null; then
  exec unshare -n sh -c 'ip link set lo up && LUAHOST_NETNS=1 exec sh "$0" "$@"' \
    "$0" "$interp" "$dir" "$@"
fi

cd "$dir" || exit 2
if [ $# -gt 0 ]; then names="$*"; else
  names=$(ls tests | sed -n 's/^\(test-.*\)\.lua$/\1/p')
fi
total=0; pass=0
log=${LUV_TESTS_LOG:-/tmp/luv-tests.log}
: > "$log"
for name in $names; do
  out=$(timeout 120 "$interp" "tests/$name.lua" 2>&1 < /dev/null)
  rc=$?
  printf '=== %s (exit %s)\n%s\n' "$name" "$rc" "$out" >> "$log"
  # tap prints "1..N" then "ok i name" / "not ok i name" per case; a crash
  # cuts the list short: the cases never reported count as failed.
  n=$(printf '%s\n' "$out" | sed -n 's/^1\.\.\([0-9][0-9]*\)$/\1/p' | head -n 1)
  ok=$(printf '%s\n' "$out" | grep -c '^ok [0-9]')
  [ -n "$n" ] || n=1
  [ "$ok" -le "$n" ] || ok=$n
  printf '%-36s %3s of %3s (exit %s)\n' "$name" "$ok" "$n" "$rc"
  total=$((total + n)); pass=$((pass + ok))
done
echo "$pass of $total pass (log: $log)"
