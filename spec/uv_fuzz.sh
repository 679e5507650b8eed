#!/bin/sh
# spec/uv_fuzz.sh LUAHOST FIRST-LAST [STEPS]: run the uv fuzzer
# (spec/uv_fuzz.lua) over a seed range, 100 seeds per process (a leak
# report at exit then names a small range), in a private network namespace
# when the machine allows it. Stops at the first failing range and prints
# how to replay it.
set -u
luahost=$1
range=$2
steps=${3:-60}
if [ "${LUAHOST_NETNS:-}" != 1 ] &&
   unshare -n sh -c 'ip link set lo up' 2>/dev/null; then
  exec unshare -n sh -c 'ip link set lo up && LUAHOST_NETNS=1 exec sh "$0" "$@"' \
    "$0" "$@"
fi
first=${range%-*}
last=${range#*-}
[ -n "$last" ] || last=$first
chunk=100
log=$(mktemp)
trap 'rm -f "$log"' EXIT
start=$first
while [ "$start" -le "$last" ]; do
  end=$((start + chunk - 1))
  [ "$end" -le "$last" ] || end=$last
  if ! timeout -s KILL 900 "$luahost" spec/uv_fuzz.lua "$start-$end" \
       "$steps" </dev/null >"$log" 2>&1; then
    grep -v '^seed ' "$log" | tail -n 60
    echo "uv_fuzz.sh: FAILED in seeds $start-$end;" \
         "last seed started: $(grep '^seed ' "$log" | tail -n 1)"
    echo "replay: $luahost spec/uv_fuzz.lua SEED $steps -v"
    exit 1
  fi
  tail -n 1 "$log"
  start=$((end + 1))
done
echo "uv_fuzz.sh: seeds $first-$last passed"
