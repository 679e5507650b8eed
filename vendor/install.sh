#!/bin/sh
# vendor/install.sh: install the Debian packages listed in vendor/packages.txt
# that are missing, then check every listed package meets its minimum version.
#
# As root it runs apt-get itself; otherwise it prints the one command to run
# and fails. Services that packages would start at install time (nginx,
# redis) are kept from starting: the specs start their own, on loopback.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
list="$here/packages.txt"

names=$(sed -e 's/#.*//' "$list" | awk 'NF {print $1}')
missing=""
for p in $names; do
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
sed -e 's/#.*//' "$list" | awk 'NF {print $1, $2}' | while read -r p min; do
  have=$(dpkg-query -W -f='${Version}' "$p" 2>/dev/null || true)
  if [ -z "$have" ] || ! dpkg --compare-versions "$have" ge "$min"; then
    echo "vendor/install.sh: $p is '${have:-absent}', need >= $min" >&2
    exit 1
  fi
done || bad=1
[ "$bad" = 0 ] || exit 1
echo "vendor/install.sh: all packages present"
