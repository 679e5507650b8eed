#!/bin/sh
# spec/run.sh LUAHOST [busted args...]
# Runs the busted suite inside LUAHOST (so every spec exercises the real
# embedded runtime), in a private network namespace when the machine allows
# it (unshare -n, then lo up): no packet can leave the machine. Ends with
# the plain line "N passed, M failed, K skipped".
set -u
luahost=$1
shift
case "$luahost" in /*) ;; *) luahost="$(pwd)/$luahost" ;; esac
export LUAHOST="$luahost"
# The specs talk to loopback only: a proxy set for the machine (curl and
# the http client both honour these) would route them elsewhere.
unset http_proxy https_proxy HTTPS_PROXY HTTP_PROXY all_proxy ALL_PROXY \
  no_proxy NO_PROXY

if [ "${LUAHOST_NETNS:-}" != 1 ]; then
  if unshare -n sh -c 'ip link set lo up' 2>/dev/null; then
    echo "spec/run.sh: running inside a private network namespace"
    exec unshare -n sh -c 'ip link set lo up && LUAHOST_NETNS=1 exec sh "$0" "$@"' \
      "$0" "$luahost" "$@"
  fi
  echo "spec/run.sh: cannot make a private network namespace" \
       "(unshare -n needs root or user namespaces): network specs that" \
       "need isolation will be pending"
  export LUAHOST_NETNS=0
fi

out=$(mktemp)
rcfile=$(mktemp)
trap 'rm -f "$out" "$rcfile"' EXIT
# sh has no pipefail: the exit status of luahost itself goes through a file,
# so a sanitizer or leak report at exit fails the run even if every spec
# passed.
{ "$luahost" /usr/bin/busted --output=utfTerminal "$@" 2>&1; echo $? > "$rcfile"; } \
  | tee "$out"
status=$(cat "$rcfile")
# Summary line of busted: "N successes / N failures / N errors / N pending"
summary=$(sed -e 's/\x1b\[[0-9;]*m//g' "$out" | grep -E '[0-9]+ success' | tail -n 1)
if [ -z "$summary" ]; then
  echo "spec/run.sh: busted printed no summary (crashed?)"
  echo "0 passed, 1 failed"
  exit 1
fi
n() { echo "$summary" | grep -oE "[0-9]+ $1" | grep -oE '^[0-9]+' || echo 0; }
passed=$(n success); failures=$(n failure); errors=$(n error); pending=$(n pending)
failed=$((failures + errors))
if [ "$failed" = 0 ] && [ "$status" != 0 ]; then
  echo "spec/run.sh: every spec passed but luahost exited $status" \
       "(a sanitizer or leak report, or files left in the tree, above?)"
  failed=1
fi
echo "$passed passed, $failed failed, $pending skipped"
[ "$failed" = 0 ] || exit 1
exit 0
