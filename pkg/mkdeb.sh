#!/bin/sh
# pkg/mkdeb.sh BUILD OUT.deb: a Debian package of the binary BUILD/luahost
# (make deb). The tree is what `make install PREFIX=/usr` lays out, staged
# in a temporary directory, plus Debian's conventions (man page gzipped,
# copyright file); DEBIAN/control's Depends is computed from the shared
# libraries the binary still needs (Lua, libuv, OpenSSL, zlib and libedit
# are linked statically): each library's package from dpkg -S, its minimum
# version from that package's shlibs file, and for libc6 the highest
# GLIBC_ symbol version the binary uses.
set -eu
build=$1
out=$2
bin="$build/luahost"
[ -x "$bin" ] || { echo "mkdeb: no $bin: run make first" >&2; exit 1; }
version=$(sed -n 's/^#define HOST_VERSION "\(.*\)"/\1/p' host/runtime.h)
arch=$(dpkg --print-architecture)
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT

${MAKE:-make} -s install DESTDIR="$stage" PREFIX=/usr BUILD="$build" \
  >/dev/null
# Debian: no debug sections in the package, man pages gzipped, a
# copyright file beside the docs.
strip --strip-debug "$stage/usr/bin/luahost"
gzip -9n "$stage/usr/share/man/man1/luahost.1"
cp LICENSE "$stage/usr/share/doc/luahost/copyright"

# Depends: one entry per package that holds a NEEDED library.
glibc=$(objdump -T "$bin" | grep -o 'GLIBC_[0-9][0-9.]*' | sed 's/GLIBC_//' |
  sort -uV | tail -n 1)
deps=""
for soname in $(objdump -p "$bin" | awk '$1 == "NEEDED" {print $2}'); do
  path=$(ldconfig -p | awk -v s="$soname" '$1 == s && /x86-64|64bit|AArch64/ \
    {print $NF; exit}')
  [ -n "$path" ] || path=$(ldconfig -p | awk -v s="$soname" \
    '$1 == s {print $NF; exit}')
  [ -n "$path" ] || { echo "mkdeb: cannot find $soname" >&2; exit 1; }
  real=$(readlink -f "$path")
  owner=$(dpkg -S "$path" 2>/dev/null || dpkg -S "$real" 2>/dev/null ||
    dpkg -S "/usr$real" 2>/dev/null || true)
  pkg=$(echo "$owner" | head -n 1 | sed 's/: .*//')
  [ -n "$pkg" ] || { echo "mkdeb: no package holds $path" >&2; exit 1; }
  name=${pkg%%:*}
  # "libfoo.so.8" -> "libfoo 8", as shlibs files name them
  lib=$(echo "$soname" | sed 's/\.so\.\([0-9][0-9.]*\)$/ \1/')
  dep=""
  for f in "/var/lib/dpkg/info/$pkg.shlibs" "/var/lib/dpkg/info/$name.shlibs"
  do
    [ -f "$f" ] || continue
    dep=$(awk -v l="$lib" '$1 " " $2 == l {$1 = ""; $2 = ""; print; exit}' \
      "$f" | sed 's/^ *//')
    [ -z "$dep" ] || break
  done
  [ -n "$dep" ] || dep=$name
  if [ "$name" = libc6 ] && [ -n "$glibc" ]; then dep="libc6 (>= $glibc)"; fi
  case ",$deps," in *", ${dep%% *}"*|*",${dep%% *}"*) continue ;; esac
  deps="${deps:+$deps, }$dep"
done

size=$(du -sk "$stage" | cut -f1)
mkdir -p "$stage/DEBIAN"
cat > "$stage/DEBIAN/control" <<CONTROL
Package: luahost
Version: $version-1
Architecture: $arch
Maintainer: luahost developers <luahost@localhost>
Installed-Size: $size
Depends: $deps
Section: interpreters
Priority: optional
Description: Lua 5.4 network host on libuv
 luahost runs Lua 5.4 scripts as tasks on a libuv loop: TCP, UDP, TLS,
 HTTP/1.1 and WebSocket servers and clients, Redis, LuaSocket's API
 without blocking, worker groups with reloads and drains.
 .
 Lua, libuv, OpenSSL, zlib and libedit are linked in statically; Lua C
 modules installed by Debian (lua-cjson, lua-lpeg, ...) load with require.
CONTROL
find "$stage" -type d -exec chmod 755 {} +
dpkg-deb --root-owner-group -Zxz --build "$stage" "$out" >/dev/null
echo "$out"
