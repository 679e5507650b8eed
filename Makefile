# luahost: a Lua 5.4 + libuv network host.
#   make          build build/luahost (installs the build deps first if needed)
#   make deps     every Debian package of vendor/packages.txt (CI); by
#                 purpose: make deps-build, deps-test, deps-bench
#   make run      build and start the main example server
#   make test     run the busted suite inside luahost (private netns if able)
#   make asan     build with ASan+UBSan into build/asan and run the suite
#   make bench    measure against a plain C libuv server (bench/README.md)
#   make lint     binding coverage and static checks
#   make fuzz     the uv fuzzer under ASan: make fuzz SEEDS=1-2000 [STEPS=60]
#   make install  binary, man page and docs under $(DESTDIR)$(PREFIX)
#   make deb      a Debian package of build/luahost (dpkg-deb)
#   make clean    remove build/

CC      ?= cc
OPT     ?= -O2 -g
WARN    := -Wall -Wextra -Wshadow -Wmissing-declarations -Wwrite-strings
LUA_INC := $(shell pkg-config --cflags lua5.4 2>/dev/null || echo -I/usr/include/lua5.4)
LIBDIR  := $(shell pkg-config --variable=libdir lua5.4 2>/dev/null || echo /usr/lib/x86_64-linux-gnu)
CFLAGS  += -std=c99 $(OPT) $(WARN) -D_GNU_SOURCE $(LUA_INC) -Ihost -Ibindings -Ilib
# Lua and libuv are linked statically; the whole Lua API is kept and exported
# (-E) so that Lua C modules installed by Debian load with require.
# libedit (the REPL's line editing) with what it needs: libbsd, libmd and
# terminfo, all from their Debian -dev packages' static archives.
EDIT_LIBS := $(LIBDIR)/libedit.a $(LIBDIR)/libbsd.a $(LIBDIR)/libmd.a \
           $(LIBDIR)/libtinfo.a
SSLDIR  := $(shell pkg-config --variable=libdir openssl 2>/dev/null || echo /usr/lib/x86_64-linux-gnu)
# OpenSSL 3 (TLS for net) is linked statically too: libssl before libcrypto;
# zlib (gzip in http) as well.
LIBS    := -Wl,-E -Wl,--whole-archive $(LIBDIR)/liblua5.4.a \
           -Wl,--no-whole-archive $(LIBDIR)/libuv_a.a $(EDIT_LIBS) \
           $(SSLDIR)/libssl.a $(SSLDIR)/libcrypto.a $(LIBDIR)/libz.a \
           -lm -ldl -lpthread

BUILD   ?= build
PREFIX  ?= /usr/local
BINDIR  ?= $(PREFIX)/bin
MANDIR  ?= $(PREFIX)/share/man
DOCDIR  ?= $(PREFIX)/share/doc/luahost
SRCS    := $(wildcard host/*.c) $(wildcard bindings/*.c) $(wildcard lib/*.c)
LUASRC  := $(shell find lib -name '*.lua' | sort)
OBJS    := $(SRCS:%.c=$(BUILD)/%.o) $(BUILD)/embed.o
# One stamp per section of vendor/packages.txt: what building needs, what
# the suite (and lint) needs, the bench peers.
DEPS_OK := build/.deps-build
DEPS_TEST := build/.deps-tests
DEPS_BENCH := build/.deps-bench
HEADERS := $(wildcard host/*.h) $(wildcard bindings/*.h) $(wildcard lib/*.h)

.PHONY: all deps deps-build deps-test deps-bench run test asan asan-build \
        fuzz bench lint install uninstall deb clean

all: $(BUILD)/luahost

deps: deps-build deps-test deps-bench
deps-build: $(DEPS_OK)
deps-test: $(DEPS_TEST)
deps-bench: $(DEPS_BENCH)

build/.deps-%: vendor/packages.txt vendor/install.sh
	@mkdir -p build
	sh vendor/install.sh $*
	@touch $@

$(BUILD)/%.o: %.c $(HEADERS) | $(DEPS_OK)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c -o $@ $<

$(BUILD)/embed.c: $(LUASRC) host/embed.sh | $(DEPS_OK)
	@mkdir -p $(BUILD)
	sh host/embed.sh $@ $(LUASRC)

$(BUILD)/embed.o: $(BUILD)/embed.c host/runtime.h
	$(CC) $(CFLAGS) -c -o $@ $<

$(BUILD)/luahost: $(OBJS)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $(OBJS) $(LIBS)

run: all
	$(BUILD)/luahost scripts/http_server.lua 127.0.0.1 8080 scripts

test: all $(DEPS_TEST)
	sh spec/run.sh $(BUILD)/luahost

asan: asan-build $(DEPS_TEST)
	LUAHOST_ASAN=1 sh spec/run.sh build/asan/luahost

asan-build:
	$(MAKE) BUILD=build/asan \
	  OPT="-O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined" \
	  LDFLAGS="-fsanitize=address,undefined" build/asan/luahost

SEEDS ?= 1-2000
STEPS ?= 60
fuzz: asan-build
	sh spec/uv_fuzz.sh build/asan/luahost $(SEEDS) $(STEPS)

bench: all $(DEPS_BENCH)
	$(MAKE) -C bench LUAHOST=$(CURDIR)/$(BUILD)/luahost

# C layout (Lua's manner, by hand): 80 columns, spaces, no trailing blanks.
CFILES  := $(SRCS) $(HEADERS) $(wildcard bench/*.c)

lint: all $(DEPS_TEST)
	$(BUILD)/luahost spec/support/bindcov.lua
	@awk 'length > 80 { print FILENAME ":" FNR ": longer than 80 columns"; e = 1 } \
	     /\t/ { print FILENAME ":" FNR ": a tab"; e = 1 } \
	     / +$$/ { print FILENAME ":" FNR ": trailing blanks"; e = 1 } \
	     END { exit e }' $(CFILES)
	luacheck --no-color -q lib scripts spec bench

# The binary is self-contained (Lua, libuv and lib/*.lua inside), so the
# install is the binary, its man page and the docs. It installs the binary
# that is there and never rebuilds it (make first): `make install
# BUILD=build/asan` installs the ASan build as it is.
install:
	@test -x $(BUILD)/luahost || { echo "make install: no $(BUILD)/luahost:" \
	  "run make first" >&2; exit 1; }
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(DOCDIR)
	install -m 755 $(BUILD)/luahost $(DESTDIR)$(BINDIR)/luahost
	install -m 644 man/luahost.1 $(DESTDIR)$(MANDIR)/man1/luahost.1
	install -m 644 README.md LICENSE docs/*.md $(DESTDIR)$(DOCDIR)/

# A Debian package of the binary that is there (make first), from a
# staged `make install PREFIX=/usr`; Depends computed (pkg/mkdeb.sh).
DEB := $(BUILD)/luahost_$(shell sed -n 's/^\#define HOST_VERSION "\(.*\)"/\1/p' \
         host/runtime.h)-1_$(shell dpkg --print-architecture 2>/dev/null).deb
deb:
	MAKE="$(MAKE)" sh pkg/mkdeb.sh $(BUILD) $(DEB)

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/luahost $(DESTDIR)$(MANDIR)/man1/luahost.1
	rm -rf $(DESTDIR)$(DOCDIR)

clean:
	rm -rf build
