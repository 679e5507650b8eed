#!/bin/sh
# vendor/install.sh [--list] [SECTION...]: install the Debian packages of
# vendor/packages.txt that are missing, then check every one of them meets
# its minimum version. SECTION: build, tests or bench (the "# build",
# "# tests" and "# bench peers" parts of the list); none: all of them.
# --list: print the names of those packages, one a line, and nothing else.
#
# As root it runs apt-get itself; otherwise it prints the one command to run
# and fails. Services that packages would start at install time (nginx,
# redis) are kept from starting: the specs start their own, on loopback.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
list="$here/packages.txt"

list_only=0
if [ "${1:-}" = --list ]; then list_only=1; shift; fi
sections=${*:-build tests bench}
for s in $sections; do
  case "$s" in
    build|tests|bench) ;;
    *) echo "vendor/install.sh: unknown section '$s'" \
         "(build, tests or bench)" >&2; exit 2 ;;
  esac
done

# "name minimum" for each package of the sections asked, once each.
wanted=$(awk -v want=" $sections " '
  /^# *build *$/ { sec = "build"; next }
  /^# *tests *$/ { sec = "tests"; next }
  /^# *bench/    { sec = "bench"; next }
  { sub(/#.*/, "") }
  NF && sec != "" && index(want, " " sec " ") && !seen[$1]++ { print $1, $2 }
' "$list")
if [ -z "$wanted" ]; then
  echo "vendor/install.sh: no package in section(s): $sections" >&2
  exit 1
fi

if [ "$list_only" = 1 ]; then
  echo "$wanted" | awk '{print $1}'
  exit 0
fi

missing=""
for p in $(echo "$wanted" | awk '{print $1}'); do
  st=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
  [ "$st" = installed ] || missing="$missing $p"
done

if [ -n "$missing" ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "vendor/install.sh: missing Debian packages:$missing" >&2
    echo "run: sudo apt-get install -y$missing" >&2
    exit 1
  fi
  echo "vendor/install.sh: installing$missing"
  # Keep postinst scripts from starting nginx/redis on the host.
  blocker=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
    blocker=/usr/sbin/policy-rc.d
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # shellcheck disable=SC2086
  apt-get install -y -qq --no-install-recommends $missing
  [ -z "$blocker" ] || rm -f "$blocker"
fi

# Every package present and at least at its listed version.
bad=0
echo "$wanted" | while read -r p min; do
  have=$(dpkg-query -W -f='${Version}' "$p" 2>/dev/null || true)
  if [ -z "$have" ] || ! dpkg --compare-versions "$have" ge "$min"; then
    echo "vendor/install.sh: $p is '${have:-absent}', need >= $min" >&2
    exit 1
  fi
done || bad=1
[ "$bad" = 0 ] || exit 1
echo "vendor/install.sh: all packages present ($sections)"
