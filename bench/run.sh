#!/bin/sh
# bench/run.sh: the body of make bench. Run by bench/Makefile after it built
# build/loadgen and build/echo_server; LUAHOST is the luahost binary.
#
# Starts every server (each on its own ephemeral port, pinned to core 0),
# drives them with build/loadgen or wrk (pinned to core 1), RUNS times per
# case, interleaved so that all servers see the same machine, and prints
# the medians as a table, which it also writes into bench/README.md with the
# date and the machine. Exits 1 only on a correctness failure (a wrong echo,
# an early EOF, a socket error, a bad HTTP answer, a server that does not
# start although it is available); never because of speed.
#
# Knobs: BENCH_DURATION (seconds per measured run, default 3), BENCH_WARMUP
# (default 0.5), BENCH_RUNS (default 3), BENCH_HIDLE (HTTP keep-alive
# connections of the hidle case, default 2000), BENCH_IDLE (connections of the
# memory case, default 10000), BENCH_README (where to write, default
# bench/README.md; "-" for nowhere), BENCH_ONLY (a subset of servers and
# cases, e.g. "lh_net_w2 pp100 http"; the floors c and nginx always run; a
# subset is not written to README.md unless BENCH_README is set; "tls" is
# the TLS case, bench/tls_bench.lua, which also reads BENCH_TLS_IDLE and
# BENCH_TLS_BULK; "proxy" is the proxy case: loadgen through
# scripts/proxy.lua, haproxy and build/proxy_server to a C echo server).
set -u
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)
build=$here/build
loadgen=$build/loadgen
LUAHOST=${LUAHOST:-$top/build/luahost}
DUR=${BENCH_DURATION:-3}
WARM=${BENCH_WARMUP:-0.5}
RUNS=${BENCH_RUNS:-3}
IDLE=${BENCH_IDLE:-10000}
HIDLE=${BENCH_HIDLE:-2000}
ONLY=${BENCH_ONLY:-}
if [ -n "$ONLY" ]; then README=${BENCH_README:--}
else README=${BENCH_README:-$here/README.md}; fi
# only LIST: the words of LIST that BENCH_ONLY names (all when unset)
only() {
  if [ -z "$ONLY" ]; then printf '%s' "$1"; return; fi
  for w in $1; do
    case " $ONLY ${2:-} " in *" $w "*) printf '%s ' "$w" ;; esac
  done
}
SRV_CPU=0
CLI_CPU=1

tmp=$(mktemp -d /tmp/luahost-bench.XXXXXX)
res=$tmp/results
: >"$res"
pids=""
failed=0
cleanup() {
  for p in $pids; do kill "$p" 2>/dev/null; done
  for p in $pids; do wait "$p" 2>/dev/null; done
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say() { printf '%s\n' "$*" >&2; }
failure() { say "bench: FAIL: $*"; failed=1; }

# More descriptors for the idle-connection case (server and client each
# hold IDLE sockets).
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# {=========================================================================
# Servers
# ==========================================================================

# Each server has a name (used in the results), a label (in the table), and
# a state: "up PID PORT", "na REASON" or "fail REASON".
state() { eval "printf '%s' \"\${st_$1:-na not started}\""; }
set_state() { eval "st_$1=\$2"; }
label() { eval "printf '%s' \"\$lb_$1\""; }

# wait_port_line FILE PID: waits (10 s at most) for the line where the
# server says its port, prints the port. Understood: "port N" (bench/*),
# "listening on HOST:N" and "serving ROOT on http://HOST:N/" (scripts/*).
# The example scripts run with --log-level warn: no line per request or
# connection (nginx's peer runs with access_log off too).
wait_port_line() {
  i=0
  while [ $i -lt 100 ]; do
    p=$(sed -n -e 's/^port \([0-9][0-9]*\).*/\1/p' \
               -e 's/^listening on .*:\([0-9][0-9]*\)$/\1/p' \
               -e 's|^serving .* on http://.*:\([0-9][0-9]*\)/.*|\1|p' \
          "$1" | head -n 1)
    if [ -n "$p" ]; then printf '%s' "$p"; return 0; fi
    kill -0 "$2" 2>/dev/null || return 1
    sleep 0.1; i=$((i + 1))
  done
  return 1
}

# wait_echo PORT PID: waits (10 s at most) until an echo round trip works
wait_echo() {
  i=0
  while [ $i -lt 100 ]; do
    "$loadgen" -p "$1" -c 1 -m 16 -w 1 -d 0.05 -W 0 >/dev/null 2>&1 && return 0
    kill -0 "$2" 2>/dev/null || return 1
    sleep 0.1; i=$((i + 1))
  done
  return 1
}

wait_http() {
  i=0
  while [ $i -lt 100 ]; do
    curl -s -o /dev/null "http://127.0.0.1:$1$HTTP_PATH" && return 0
    kill -0 "$2" 2>/dev/null || return 1
    sleep 0.1; i=$((i + 1))
  done
  return 1
}

# start NAME KIND PORTMODE CMD...: starts CMD pinned to core 0 (to the
# cores in $srv_cpus when set: the worker groups).
# KIND is echo or http; PORTMODE is "print" (the server prints "port N")
# or a port number the command was given.
start() {
  name=$1 kind=$2 pmode=$3; shift 3
  taskset -c "${srv_cpus:-$SRV_CPU}" "$@" >"$tmp/$name.out" \
    2>"$tmp/$name.err" </dev/null &
  pid=$!
  pids="$pids $pid"
  if [ "$pmode" = print ]; then
    port=$(wait_port_line "$tmp/$name.out" "$pid") || port=""
  else
    port=$pmode
  fi
  ok=0
  if [ -n "$port" ]; then
    if [ "$kind" = echo ]; then wait_echo "$port" "$pid" && ok=1
    else wait_http "$port" "$pid" && ok=1; fi
  fi
  if [ $ok = 1 ] && [ -n "${nworkers:-}" ]; then
    # a supervisor: the state also lists it and its workers as PID,PID,...
    # (their CPU is summed) once all of them run
    i=0 wp=""
    while [ $i -lt 100 ]; do
      wp=$(cat "/proc/$pid/task/$pid/children" 2>/dev/null)
      [ "$(echo $wp | wc -w)" -ge "$nworkers" ] && break
      sleep 0.1; i=$((i + 1))
    done
    set_state "$name" "up $pid $port $pid$(printf ',%s' $wp)"
  elif [ $ok = 1 ]; then
    set_state "$name" "up $pid $port"
  else
    set_state "$name" "fail did not start: $(tail -n 3 "$tmp/$name.err" | tr '\n' ' ')"
    failure "$name ($*) did not start: $(cat "$tmp/$name.err")"
    kill "$pid" 2>/dev/null
  fi
}

free_port() { "$loadgen" -f; }

# Is a luahost feature there? (the tcp bindings and net land separately)
lh_has() { [ -x "$LUAHOST" ] && "$LUAHOST" -e "$1" >/dev/null 2>&1; }

# The echo servers, in table order; c is the floor.
echo_servers=$(only "c lh_uv lh_net lh_net_w2 luv node" c)
lb_c="C libuv (floor)"
lb_lh_uv="luahost uv callbacks"
if [ -f "$top/scripts/echo.lua" ]; then lb_lh_net="luahost net (scripts/echo.lua)"
else lb_lh_net="luahost net (bench/net_echo.lua)"; fi
lb_lh_net_w2="luahost net, --workers 2 (cores 0,1)"
lb_luv="lua5.4 + luv"
lb_node="node $(node --version 2>/dev/null)"

# net_script: the example echo server if it exists, else bench/net_echo.lua
net_script() {
  if [ -f "$top/scripts/echo.lua" ]; then echo "$top/scripts/echo.lua"
  else echo "$here/net_echo.lua"; fi
}

# start_echo NAME [SUFFIX]: starts the echo server NAME as NAME$SUFFIX
start_echo() {
  n=$1${2:-}
  case $1 in
  c) start "$n" echo print "$build/echo_server" ;;
  lh_uv)
    if lh_has 'assert(require("uv").new_tcp)'; then
      start "$n" echo print "$LUAHOST" "$here/uv_echo.lua"
    else
      set_state "$n" "na luahost has no uv.new_tcp yet"
    fi ;;
  lh_net)
    if ! lh_has 'require("net")'; then
      set_state "$n" "na luahost has no net module yet"
    elif [ -f "$top/scripts/echo.lua" ]; then
      start "$n" echo print "$LUAHOST" --log-level warn \
        "$top/scripts/echo.lua" 127.0.0.1 0
    else
      start "$n" echo print "$LUAHOST" "$here/net_echo.lua"
    fi ;;
  lh_net_w2)
    # scripts/echo.lua unchanged: the supervisor binds the socket it asks
    # for and every worker serves it
    if ! lh_has 'assert(require("luahost").listen_fds and require("net"))'
    then
      set_state "$n" "na luahost has no --workers yet"
    else
      p=$(free_port)
      srv_cpus=0,1 nworkers=2 start "$n" echo "$p" "$LUAHOST" --workers 2 \
        --log-level warn "$top/scripts/echo.lua" 127.0.0.1 "$p"
    fi ;;
  luv)
    if lua5.4 -e 'require "luv"' >/dev/null 2>&1; then
      start "$n" echo print lua5.4 "$here/uv_echo.lua"
    else
      set_state "$n" "na lua5.4 or lua-luv not installed"
    fi ;;
  node)
    if command -v node >/dev/null; then
      start "$n" echo print node "$here/node_echo.js"
    else
      set_state "$n" "na node not installed"
    fi ;;
  esac
}

http_servers=$(only "nginx lh_http lh_http_w2 lh_http_lua ngx_lua node_http" nginx)
lb_nginx="nginx $(nginx -v 2>&1 | sed 's|.*nginx/||') (floor)"
lb_lh_http="luahost scripts/http_server.lua"
# Every HTTP server answers GET /hello with the same 12 bytes.
HTTP_PATH=/hello
HTTP_BODY="hello world"
lb_lh_http_w2="luahost http_server.lua, --workers 2 (cores 0,1)"
lb_lh_http_lua="luahost, /hello a Lua handler (bench/http_lua.lua)"
lb_ngx_lua="nginx + Lua handler (lua-nginx-module $(dpkg-query -W -f='${Version}' libnginx-mod-http-lua 2>/dev/null | sed 's/^1://; s/-.*//'), LuaJIT)"
lb_node_http="node http"

# start_nginx [NAME]: nginx (the floor: "return 200") or, as ngx_lua,
# nginx running a Lua handler (lua-nginx-module on LuaJIT: OpenResty's
# model, the peer whose job is the one luahost's HTTP server does)
start_nginx() {
  n=${1:-nginx}
  if ! command -v nginx >/dev/null; then
    set_state "$n" "na nginx not installed"; return
  fi
  mods=/usr/lib/nginx/modules
  if [ "$n" = ngx_lua ] && [ ! -f "$mods/ngx_http_lua_module.so" ]; then
    set_state "$n" "na libnginx-mod-http-lua not installed"; return
  fi
  p=$(free_port)
  d=$tmp/$n
  mkdir -p "$d"
  if [ "$n" = ngx_lua ]; then
    load="load_module $mods/ndk_http_module.so;
load_module $mods/ngx_http_lua_module.so;"
    # the same answer as http_server.lua's /hello route: a type and a
    # length set by the handler, then the body
    loc='location = /hello { content_by_lua_block {
      local body = "hello world\n"
      ngx.header["Content-Type"] = "text/plain"
      ngx.header["Content-Length"] = #body
      ngx.print(body)
    } }'
  else
    load=""
    loc='location / { default_type text/plain; return 200 "hello world\n"; }'
  fi
  # One process (no master), so that /proc/PID/stat is the worker's CPU.
  cat >"$d/nginx.conf" <<EOF
$load
worker_processes 1;
master_process off;
daemon off;
pid $d/nginx.pid;
error_log $d/error.log;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $d/body;
  proxy_temp_path $d/proxy;
  fastcgi_temp_path $d/fastcgi;
  uwsgi_temp_path $d/uwsgi;
  scgi_temp_path $d/scgi;
  keepalive_requests 1000000;
  server {
    listen 127.0.0.1:$p;
    $loc
  }
}
EOF
  start "$n" http "$p" nginx -e "$d/error.log" -p "$d" -c "$d/nginx.conf"
}

start_http() {
  case $1 in
  nginx) start_nginx ;;
  ngx_lua) start_nginx ngx_lua ;;
  lh_http)
    if [ -f "$top/scripts/http_server.lua" ]; then
      start lh_http http print "$LUAHOST" --log-level warn \
        "$top/scripts/http_server.lua" \
        127.0.0.1 0 "$top/scripts"
    else
      set_state lh_http "na scripts/http_server.lua not written yet"
    fi ;;
  lh_http_w2)
    if [ ! -f "$top/scripts/http_server.lua" ]; then
      set_state lh_http_w2 "na scripts/http_server.lua not written yet"
    elif ! lh_has 'assert(require("luahost").listen_fds)'; then
      set_state lh_http_w2 "na luahost has no --workers yet"
    else
      p=$(free_port) # http_server.lua unchanged, as for echo above
      srv_cpus=0,1 nworkers=2 start lh_http_w2 http "$p" "$LUAHOST" \
        --workers 2 --log-level warn "$top/scripts/http_server.lua" \
        127.0.0.1 "$p" \
        "$top/scripts"
    fi ;;
  lh_http_lua)
    start lh_http_lua http print "$LUAHOST" --log-level warn \
      "$here/http_lua.lua" 127.0.0.1 0 ;;
  node_http)
    if command -v node >/dev/null; then
      start node_http http print node "$here/node_http.js"
    else
      set_state node_http "na node not installed"
    fi ;;
  esac
}

# stop NAME: SIGTERM to the server's PID (a supervisor drains its workers)
stop() {
  set -- $(state "$1")
  [ "$1" = up ] || return 0
  kill "$2" 2>/dev/null && wait "$2" 2>/dev/null
  pids=$(for p in $pids; do [ "$p" = "$2" ] || printf '%s ' "$p"; done)
}

# }=========================================================================

# {=========================================================================
# Measuring
# ==========================================================================

# echo cases: name, label, loadgen arguments
cases=$(only "pp1 pp100 pipe stream")
http_cases=$(only "http httpv"); http_on=$http_cases; idle_on=$(only idle)
hidle_on=$(only hidle)
hclient_on=$(only hclient)
tls_on=$(only tls)
proxy_on=$(only proxy)
if [ -n "$ONLY" ] &&
   [ -z "$cases$http_on$idle_on$hidle_on$hclient_on$tls_on$proxy_on" ]; then
  cases="pp1 pp100 pipe stream"; http_cases="http httpv"   # servers only
  http_on=1; idle_on=1; hidle_on=1; hclient_on=1
fi
if [ -n "$ONLY" ] &&
   [ -z "$(only "lh_uv lh_net lh_net_w2 luv node lh_http lh_http_w2 lh_http_lua ngx_lua node_http")" ]
then                                                       # cases only
  echo_servers="c lh_uv lh_net lh_net_w2 luv node"
  http_servers="nginx lh_http lh_http_w2 lh_http_lua ngx_lua node_http"
fi
[ -n "$http_on$hidle_on" ] || http_servers=""
[ -n "$cases$idle_on" ] || echo_servers=""
# the client case loads nginx (and only nginx, when it runs alone)
if [ -n "$hclient_on" ]; then
  case " $http_servers " in *" nginx "*) ;; *) http_servers="nginx" ;; esac
fi
cl_pp1="ping-pong 1 conn x 64 B"
ca_pp1="-c 1 -m 64 -w 1"
cl_pp100="ping-pong 100 conns x 64 B"
ca_pp100="-c 100 -m 64 -w 1"
cl_pipe="pipelined 100 conns x 64 B x 16"
ca_pipe="-c 100 -m 64 -w 16"
cl_stream="streaming 10 conns x 64 KiB x 4"
ca_stream="-c 10 -m 65536 -w 4"

# The worker groups run only where two cores can make a difference to a
# many-connection load: pp100, pipe (and the HTTP cases).
runs_case() {  # runs_case CASE SERVER
  case "$2/$1" in lh_net_w2/pp1|lh_net_w2/stream) return 1 ;; esac
}

run_echo() {  # run_echo CASE SERVER RUN
  runs_case "$1" "$2" || return 0
  set -- "$1" "$2" "$3" $(state "$2")
  [ "$4" = up ] || return 0
  eval "args=\$ca_$1"
  out=$(taskset -c $CLI_CPU "$loadgen" -p "$6" $args -d "$DUR" -W "$WARM" \
        -P "${7:-$5}" 2>"$tmp/loadgen.err")
  if [ $? -ne 0 ]; then
    failure "$1 on $2: $(cat "$tmp/loadgen.err")"
    set_state "$2" "fail $1: $(head -n 1 "$tmp/loadgen.err")"
    echo "case=$1 server=$2 run=$3 error=1" >>"$res"
    return 0
  fi
  echo "case=$1 server=$2 run=$3 $out" >>"$res"
}

busy_ticks() {  # busy time of the machine (as loadgen counts it), ticks
  awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9; exit }' /proc/stat
}

cpu_ticks() {  # utime+stime of PID (or PID,PID,...: summed) in ticks
  for p in $(echo "$1" | tr ',' ' '); do
    sed 's/.*) //' "/proc/$p/stat"
  done | awk '{ t += $12 + $13 } END { print t + 0 }'
}

check_http() {  # check_http PORT: 200 and the expected body, keep-alive
  hdr=$(curl -s -m 5 -D - -o "$tmp/body" "http://127.0.0.1:$1$HTTP_PATH") ||
    return 1
  printf '%s' "$hdr" | head -n 1 | grep -q '^HTTP/1\.1 200' || return 1
  printf '%s' "$hdr" | grep -qi '^connection: *close' && return 1
  [ "$(cat "$tmp/body")" = "$HTTP_BODY" ] &&
    [ "$(wc -c <"$tmp/body")" -eq $((${#HTTP_BODY} + 1)) ]
}

# HTTP cases: "http" repeats one request (wrk's default), "httpv" sends
# distinct ones (wrk_distinct.lua)
hl_http="same request"
ha_http=""
hl_httpv="distinct requests"
ha_httpv="-s $here/wrk_distinct.lua"

run_http() {  # run_http CASE SERVER RUN
  hcase=$1; shift
  eval "hargs=\$ha_$hcase"
  set -- "$1" "$2" $(state "$1")
  [ "$3" = up ] || return 0
  if ! check_http "$5"; then
    failure "$1: bad HTTP answer: $(head -c 200 "$tmp/body" 2>/dev/null)"
    set_state "$1" "fail bad HTTP answer"
    echo "case=$hcase server=$1 run=$2 error=1" >>"$res"
    return 0
  fi
  pl=${6:-$4}   # the PIDs whose CPU counts
  b0=$(busy_ticks); c0=$(cpu_ticks "$pl")
  # wrk runs under a small sh that then reads its own cutime + cstime: the
  # client's CPU time
  taskset -c $CLI_CPU sh -c 'wrk "$@" >"$0" 2>&1; st=$?
    sed "s/.*) //" /proc/$$/stat | awk "{ print \$14 + \$15 }" >"$0.cpu"
    exit $st' "$tmp/wrk.out" -t1 -c50 --latency $hargs \
    -d"$(awk -v d="$DUR" 'BEGIN { printf "%d", (d < 1) ? 1 : d + 0.5 }')s" \
    "http://127.0.0.1:$5$HTTP_PATH"
  st=$?
  c1=$(cpu_ticks "$pl"); b1=$(busy_ticks)
  wc=$(cat "$tmp/wrk.out.cpu" 2>/dev/null || echo 0)
  if [ $st -ne 0 ] || grep -qE 'Non-2xx|Socket errors' "$tmp/wrk.out"; then
    failure "$1: wrk: $(cat "$tmp/wrk.out")"
    set_state "$1" "fail wrk reported errors"
    echo "case=$hcase server=$1 run=$2 error=1" >>"$res"
    return 0
  fi
  awk -v case="$hcase" -v server="$1" -v run="$2" -v cpu=$((c1 - c0)) \
      -v cli="$wc" -v busy=$((b1 - b0)) -v hz="$(getconf CLK_TCK)" '
    function us(v) {
      if (v ~ /us$/) return v + 0; if (v ~ /ms$/) return v * 1000
      if (v ~ /s$/) return v * 1e6; return v
    }
    / requests in / { n = $1; secs = $4 + 0 }
    /Requests\/sec/ { rps = $2 }
    /^ +50%/ { p50 = us($2) }
    /^ +99%/ { p99 = us($2) }
    END {
      printf "case=%s server=%s run=%s msgs=%d msgs_per_s=%.0f p50_us=%.1f " \
             "p99_us=%.1f cli_cpu_pct=%.0f srv_cpu_pct=%.0f " \
             "cpu_us_per_msg=%.3f cli_us_per_msg=%.3f other_cpu_pct=%.0f\n",
             case, server, run, n, rps, p50, p99, cli / hz / secs * 100,
             cpu / hz / secs * 100, cpu / hz * 1e6 / n, cli / hz * 1e6 / n,
             (busy > cpu + cli) ? (busy - cpu - cli) / hz / secs * 100 : 0
    }' "$tmp/wrk.out" >>"$res"
}

# The client case: wrk against nginx (its "hcw" rows: the floor), then the
# http module's client doing the same (bench/http_client_bench.lua: 50
# tasks through the pool, every body checked), on the client core.
hl_hcw="client"
ha_hcw=""
run_hclient() {  # run_hclient RUN
  set -- "$1" $(state nginx)
  [ "$2" = up ] || return 0
  run_http hcw nginx "$1"
  [ -x "$LUAHOST" ] || return 0
  c0=$(cpu_ticks "$3")
  out=$(cd "$top" && taskset -c $CLI_CPU "$LUAHOST" \
        bench/http_client_bench.lua "$4" "$DUR" 50 "$WARM" \
        2>"$tmp/hclient.err")
  st=$?
  c1=$(cpu_ticks "$3")
  if [ $st -ne 0 ]; then
    failure "hclient: $(cat "$tmp/hclient.err")"
    echo "case=hclient server=lh_client run=$1 error=1" >>"$res"
    return 0
  fi
  # nginx's CPU here spans the warm-up as well: a rough per request
  echo "case=hclient server=lh_client run=$1 $out" \
    "srv_us_per_msg=$(awk -v c=$((c1 - c0)) -v hz="$(getconf CLK_TCK)" \
      -v o="$out" -v w="$WARM" -v d="$DUR" 'BEGIN {
        split(o, f, /[ =]/); n = f[2] * (d + w) / d
        printf "%.3f", (n > 0) ? c / hz * 1e6 / n : 0 }')" >>"$res"
}

run_idle() {  # run_idle SERVER: a fresh server, IDLE connections
  start_echo "$1" _idle
  set -- "$1" $(state "$1_idle")
  [ "$2" = up ] || return 0
  out=$(taskset -c $CLI_CPU "$loadgen" -p "$4" -i "$IDLE" -P "$3" \
        2>"$tmp/loadgen.err")
  if [ $? -ne 0 ]; then
    failure "idle on $1: $(cat "$tmp/loadgen.err")"
    echo "case=idle server=$1 run=1 error=1" >>"$res"
  else
    echo "case=idle server=$1 $out" >>"$res"
  fi
  stop "$1_idle"
}

run_hidle() {  # run_hidle SERVER: a fresh HTTP server, HIDLE keep-alive
  start_http "$1"  # connections idle after one request each
  set -- "$1" $(state "$1")
  [ "$2" = up ] || return 0
  out=$(taskset -c $CLI_CPU /usr/bin/python3 "$here/http_idle.py" "$3" \
        "$4" "$HIDLE" 2>"$tmp/hidle.err")
  if [ $? -ne 0 ]; then
    failure "hidle on $1: $(cat "$tmp/hidle.err")"
    echo "case=hidle server=$1 run=1 error=1" >>"$res"
  else
    echo "case=hidle server=$1 $out" >>"$res"
  fi
  stop "$1"
}

# The proxy case ("proxy"): loadgen -> a proxy (core 0, measured) -> the C
# echo server (on the client core: part of the load, as loadgen is). The
# proxies in table order; pr_c is the floor.
proxies="pr_c pr_haproxy pr_lh"
lb_pr_c="C libuv proxy (floor)"
lb_pr_haproxy="haproxy $(haproxy -v 2>/dev/null |
  sed -n 's/^HAProxy version \([^ ]*\).*/\1/p'), mode tcp, 1 thread"
lb_pr_lh="luahost scripts/proxy.lua (net.splice)"
pcases="pstream ppipe"
cl_pstream="streaming 10 conns x 64 KiB x 4"
ca_pstream=$ca_stream
ms_pstream=65536
cl_ppipe="pipelined 100 conns x 64 B x 16"
ca_ppipe=$ca_pipe
ms_ppipe=64

start_proxies() {
  srv_cpus=$CLI_CPU start pr_up echo print "$build/echo_server"
  set -- $(state pr_up)
  if [ "$1" != up ]; then
    for s in $proxies; do set_state $s "na the upstream did not start"; done
    return
  fi
  up=$3
  start pr_c echo print "$build/proxy_server" 127.0.0.1 "$up"
  if command -v haproxy >/dev/null; then
    p=$(free_port)
    mkdir -p "$tmp/haproxy"
    # one thread, so that /proc/PID/stat is all of its CPU; no splice()
    # (haproxy's default without option splice-*)
    cat >"$tmp/haproxy/haproxy.cfg" <<EOF
global
  nbthread 1
  maxconn 4096
defaults
  mode tcp
  timeout connect 5s
  timeout client 60s
  timeout server 60s
listen proxy
  bind 127.0.0.1:$p
  server up 127.0.0.1:$up
EOF
    start pr_haproxy echo "$p" haproxy -db -f "$tmp/haproxy/haproxy.cfg"
  else
    set_state pr_haproxy "na haproxy not installed"
  fi
  if [ ! -f "$top/scripts/proxy.lua" ]; then
    set_state pr_lh "na scripts/proxy.lua not written yet"
  elif ! lh_has 'assert(require("net").splice)'; then
    set_state pr_lh "na luahost has no net.splice yet"
  else
    p=$(free_port)  # (its "listening on" line ends with the upstream's)
    start pr_lh echo "$p" "$LUAHOST" --log-level warn \
      "$top/scripts/proxy.lua" 127.0.0.1 "$up" 127.0.0.1 "$p"
  fi
}

run_proxy() {  # run_proxy CASE PROXY RUN
  set -- "$1" "$2" "$3" $(state "$2")
  [ "$4" = up ] || return 0
  eval "args=\$ca_$1"
  upid=$(state pr_up | cut -d' ' -f2)
  e0=$(cpu_ticks "$upid"); w0=$(date +%s.%N)
  out=$(taskset -c $CLI_CPU "$loadgen" -p "$6" $args -d "$DUR" -W "$WARM" \
        -P "$5" 2>"$tmp/loadgen.err")
  st=$?
  e1=$(cpu_ticks "$upid"); w1=$(date +%s.%N)
  if [ $st -ne 0 ]; then
    failure "$1 on $2: $(cat "$tmp/loadgen.err")"
    set_state "$2" "fail $1: $(head -n 1 "$tmp/loadgen.err")"
    echo "case=$1 server=$2 run=$3 error=1" >>"$res"
    return 0
  fi
  # The upstream echo server is part of the load, not "other load": its
  # CPU (over the whole loadgen run, as a rate) is taken off.
  echo "case=$1 server=$2 run=$3 $(printf '%s\n' "$out" | awk \
    -v e=$((e1 - e0)) -v hz="$(getconf CLK_TCK)" -v w0="$w0" -v w1="$w1" '{
      up = (w1 > w0) ? e / hz / (w1 - w0) * 100 : 0
      for (i = 1; i <= NF; i++)
        if ($i ~ /^other_cpu_pct=/) {
          o = substr($i, 15) - up
          $i = sprintf("other_cpu_pct=%.0f", (o > 0) ? o : 0)
        }
      printf "%s up_cpu_pct=%.0f\n", $0, up }')" >>"$res"
}

# }=========================================================================

# {=========================================================================
# Reporting
# ==========================================================================

med() {  # med CASE SERVER KEY: median over the runs, empty if none
  grep "^case=$1 server=$2 " "$res" | tr ' ' '\n' | sed -n "s/^$3=//p" |
    sort -g | awk '{ a[NR] = $1 } END { if (NR) print a[int((NR + 1) / 2)] }'
}

spread() {  # spread CASE SERVER KEY: " ±N%", half the range of the runs
  grep "^case=$1 server=$2 " "$res" | tr ' ' '\n' | sed -n "s/^$3=//p" |
    sort -g | awk '{ a[NR] = $1 } END {
      m = a[int((NR + 1) / 2)]
      if (NR > 1 && m > 0) printf " ±%.0f%%", (a[NR] - a[1]) / 2 / m * 100 }'
}

# fmt VALUE FORMAT: printf with an empty value shown as -
fmt() { if [ -n "$1" ]; then printf "$2" "$1"; else printf -- '-'; fi; }
ratio() {  # ratio A B
  if [ -n "$1" ] && [ -n "$2" ]; then
    awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else printf "-" }'
  else printf -- '-'; fi
}
# target RATIO OP LIMIT: "≤ 1.10 ✓" when met
target() {
  [ -n "$3" ] || return 0
  if [ "$1" = - ]; then printf '%s %s' "$2" "$3"; return 0; fi
  awk -v r="$1" -v op="$2" -v l="$3" 'BEGIN {
    ok = (op == "≥") ? (r >= l) : (r <= l)
    printf "%s %s %s", op, l, ok ? "met" : "MISSED" }'
}

# targets from the issue: CASE SERVER -> "what op limit"
targets_for() {
  case "$1/$2" in
  pp100/lh_net) echo "cpu 1.05" ;;
  pp100/lh_uv) echo "cpu 1.05" ;;
  pipe/lh_net) echo "cpu 1.05" ;;
  stream/lh_net) echo "mb 0.95" ;;
  esac
}

note_for() {  # why a server has no numbers: "n/a: ..." or "FAILED: ..."
  set -- $(state "$1")
  what="n/a:"
  [ "$1" = fail ] && what="FAILED:"
  [ "$1" = up ] && what="FAILED: (see the log)"
  shift
  printf '%s %s' "$what" "$*"
}

failed_in() {  # failed_in CASE SERVER: did a run of CASE on SERVER fail?
  grep -q "^case=$1 server=$2 .*error=1" "$res"
}

echo_table() {
  echo "| case | server | msgs/s | vs C | MB/s | vs C | p50 µs | p99 µs | client CPU % | server CPU % | other load % | server CPU µs/msg | vs C | target |"
  echo "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|"
  for k in $cases; do
    eval "cl=\$cl_$k"
    cm=$(med "$k" c msgs_per_s); cb=$(med "$k" c mb_per_s)
    cc=$(med "$k" c cpu_us_per_msg)
    for s in $echo_servers; do
      runs_case "$k" "$s" || continue
      m=$(med "$k" "$s" msgs_per_s)
      if [ -z "$m" ] || failed_in "$k" "$s"; then
        echo "| $cl | $(label "$s") | $(note_for "$s") | | | | | | | | | | | |"
        continue
      fi
      b=$(med "$k" "$s" mb_per_s); c=$(med "$k" "$s" cpu_us_per_msg)
      rm_=$(ratio "$m" "$cm"); rb=$(ratio "$b" "$cb"); rc=$(ratio "$c" "$cc")
      t=""
      set -- $(targets_for "$k" "$s")
      while [ $# -ge 2 ]; do
        case $1 in
        msgs) t="$t$(target "$rm_" ≥ "$2") msgs/s; " ;;
        mb) t="$t$(target "$rb" ≥ "$2") MB/s; " ;;
        cpu) t="$t$(target "$rc" ≤ "$2") CPU; " ;;
        esac
        shift 2
      done
      echo "| $cl | $(label "$s") | $(fmt "$m" %.0f)$(spread "$k" "$s" msgs_per_s) | $rm_ | $(fmt "$b" %.1f) | $rb | $(fmt "$(med "$k" "$s" p50_us)" %.1f) | $(fmt "$(med "$k" "$s" p99_us)" %.1f) | $(fmt "$(med "$k" "$s" cli_cpu_pct)" %.0f) | $(fmt "$(med "$k" "$s" srv_cpu_pct)" %.0f) | $(fmt "$(med "$k" "$s" other_cpu_pct)" %.0f) | $(fmt "$c" %.3f)$(spread "$k" "$s" cpu_us_per_msg) | $rc | ${t%; } |"
    done
  done
}

http_table() {
  echo "| requests | server | requests/s | vs nginx | p50 µs | p99 µs | client CPU % | server CPU % | other load % | server CPU µs/req | vs nginx | target |"
  echo "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|"
  for h in $http_cases; do
  eval "hl=\$hl_$h"
  nm=$(med $h nginx msgs_per_s); nc=$(med $h nginx cpu_us_per_msg)
  for s in $http_servers; do
    m=$(med $h "$s" msgs_per_s)
    if [ -z "$m" ] || failed_in $h "$s"; then
      echo "| $hl | $(label "$s") | $(note_for "$s") | | | | | | | | | |"
      continue
    fi
    c=$(med $h "$s" cpu_us_per_msg)
    rc=$(ratio "$c" "$nc")
    t=""
    [ "$s" = lh_http ] && t="$(target "$rc" ≤ 1.05) CPU"
    [ "$s" = lh_http_lua ] &&
      t="$(ratio "$c" "$(med $h ngx_lua cpu_us_per_msg)") × nginx + Lua"
    echo "| $hl | $(label "$s") | $(fmt "$m" %.0f) | $(ratio "$m" "$nm") | $(fmt "$(med $h "$s" p50_us)" %.1f) | $(fmt "$(med $h "$s" p99_us)" %.1f) | $(fmt "$(med $h "$s" cli_cpu_pct)" %.0f) | $(fmt "$(med $h "$s" srv_cpu_pct)" %.0f) | $(fmt "$(med $h "$s" other_cpu_pct)" %.0f) | $(fmt "$c" %.3f)$(spread $h "$s" cpu_us_per_msg) | $rc | $t |"
  done
  done
}

hclient_table() {
  echo "| client | requests/s | vs wrk | client CPU µs/req | vs wrk | nginx CPU µs/req |"
  echo "|---|--:|--:|--:|--:|--:|"
  wm=$(med hcw nginx msgs_per_s); wc=$(med hcw nginx cli_us_per_msg)
  echo "| wrk -t1 -c50 (floor) | $(fmt "$wm" %.0f)$(spread hcw nginx msgs_per_s) | 1.00 | $(fmt "$wc" %.3f) | 1.00 | $(fmt "$(med hcw nginx cpu_us_per_msg)" %.3f) |"
  m=$(med hclient lh_client msgs_per_s)
  if [ -z "$m" ] || failed_in hclient lh_client; then
    echo "| luahost http.request, 50 tasks | FAILED: (see the log) | | | | |"
    return
  fi
  c=$(med hclient lh_client cli_us_per_msg)
  echo "| luahost http.request, 50 tasks, pooled | $(fmt "$m" %.0f)$(spread hclient lh_client msgs_per_s) | $(ratio "$m" "$wm") | $(fmt "$c" %.3f)$(spread hclient lh_client cli_us_per_msg) | $(ratio "$c" "$wc") | $(fmt "$(med hclient lh_client srv_us_per_msg)" %.3f) |"
}

proxy_table() {
  echo "| load | proxy | msgs/s | MB/s | vs C | p50 µs | p99 µs | client CPU % | upstream echo CPU % | proxy CPU % | other load % | proxy CPU µs/MiB | vs C | target |"
  echo "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|"
  for k in $pcases; do
    eval "cl=\$cl_$k; ms=\$ms_$k"
    cb=$(med "$k" pr_c mb_per_s); cc=$(med "$k" pr_c cpu_us_per_msg)
    for s in $proxies; do
      m=$(med "$k" "$s" msgs_per_s)
      if [ -z "$m" ] || failed_in "$k" "$s"; then
        echo "| $cl | $(label "$s") | $(note_for "$s") | | | | | | | | | | | |"
        continue
      fi
      b=$(med "$k" "$s" mb_per_s); c=$(med "$k" "$s" cpu_us_per_msg)
      rb=$(ratio "$b" "$cb"); rc=$(ratio "$c" "$cc")
      t=""
      [ "$k/$s" = pstream/pr_lh ] && t="$(target "$rb" ≥ 0.95) MB/s"
      echo "| $cl | $(label "$s") | $(fmt "$m" %.0f) | $(fmt "$b" %.1f)$(spread "$k" "$s" mb_per_s) | $rb | $(fmt "$(med "$k" "$s" p50_us)" %.1f) | $(fmt "$(med "$k" "$s" p99_us)" %.1f) | $(fmt "$(med "$k" "$s" cli_cpu_pct)" %.0f) | $(fmt "$(med "$k" "$s" up_cpu_pct)" %.0f) | $(fmt "$(med "$k" "$s" srv_cpu_pct)" %.0f) | $(fmt "$(med "$k" "$s" other_cpu_pct)" %.0f) | $(awk -v c="$c" -v m="$ms" 'BEGIN { printf "%.0f", c * 1048576 / m }')$(spread "$k" "$s" cpu_us_per_msg) | $rc | $t |"
    done
  done
}


idle_table() {
  echo "| server | RSS before (KiB) | RSS with $IDLE conns (KiB) | bytes per idle conn | vs C | target |"
  echo "|---|--:|--:|--:|--:|---|"
  cbpc=$(med idle c bytes_per_conn)
  for s in $echo_servers; do
    [ "$s" = lh_net_w2 ] && continue
    bpc=$(med idle "$s" bytes_per_conn)
    if [ -z "$bpc" ]; then
      r=$(note_for "${s}_idle")
      [ -n "$idle_skip" ] && r="n/a: $idle_skip"
      failed_in idle "$s" && r="FAILED: (see the log)"
      echo "| $(label "$s") | $r | | | | |"
      continue
    fi
    t=""
    [ "$s" = lh_net ] && t=$(awk -v b="$bpc" 'BEGIN {
      printf "≤ 1500 %s", (b <= 1500) ? "met" : "MISSED" }')
    echo "| $(label "$s") | $(med idle "$s" rss_before_kb) | $(med idle "$s" rss_after_kb) | $(fmt "$bpc" %.0f) | $(ratio "$bpc" "$cbpc") | $t |"
  done
}

hidle_table() {
  echo "| server | RSS before (KiB) | RSS with $HIDLE conns (KiB) | bytes per idle conn | vs nginx | target |"
  echo "|---|--:|--:|--:|--:|---|"
  nbpc=$(med hidle nginx bytes_per_conn)
  for s in $http_servers; do
    [ "$s" = lh_http_w2 ] && continue
    bpc=$(med hidle "$s" bytes_per_conn)
    if [ -z "$bpc" ]; then
      r=$(note_for "$s")
      failed_in hidle "$s" && r="FAILED: (see the log)"
      echo "| $(label "$s") | $r | | | | |"
      continue
    fi
    t=""
    [ "$s" = lh_http ] && t=$(awk -v b="$bpc" 'BEGIN {
      printf "≤ 600 %s", (b <= 600) ? "met" : "MISSED" }')
    echo "| $(label "$s") | $(med hidle "$s" rss_before_kib) | $(med hidle "$s" rss_after_kib) | $(fmt "$bpc" %.0f) | $(ratio "$bpc" "$nbpc") | $t |"
  done
}

# }=========================================================================

[ -x "$loadgen" ] && [ -x "$build/echo_server" ] || {
  say "bench: build/loadgen or build/echo_server missing (run make -C bench)"
  exit 2
}
# Self-test: the load generator must notice a server that corrupts a byte
# and one that closes early; otherwise no number below could be trusted.
selftest() {  # selftest FAULT EXPECTED-MESSAGE
  "$build/echo_server" 127.0.0.1 0 "$1" >"$tmp/self.out" 2>&1 </dev/null &
  spid=$!
  sport=$(wait_port_line "$tmp/self.out" "$spid") || sport=""
  ok=0
  if [ -n "$sport" ] && ! "$loadgen" -p "$sport" -c 2 -m 64 -w 4 -d 0.3 -W 0 \
       >/dev/null 2>"$tmp/self.err" && grep -q "$2" "$tmp/self.err"; then
    ok=1
  fi
  kill "$spid" 2>/dev/null; wait "$spid" 2>/dev/null
  if [ $ok = 1 ]; then
    say "bench: self-test $1: caught ($2)"
    selftest_ok="$selftest_ok $1"
  else failure "self-test: loadgen did not report '$2' against a server with fault $1"
  fi
}
selftest_ok=""
selftest corrupt:10000 "differ from those sent"
selftest close:10000 "early EOF"

started=$(date +%s)
say "bench: servers on core $SRV_CPU, clients on core $CLI_CPU;" \
    "$RUNS runs of ${DUR}s (+${WARM}s warm-up) per case; medians"
[ -x "$LUAHOST" ] || say "bench: $LUAHOST missing: luahost rows are n/a"

for s in $echo_servers; do start_echo "$s"; done
for s in $http_servers; do start_http "$s"; done
pr_list=""
lb_pr_up="C libuv echo (the proxies' upstream, core $CLI_CPU)"
if [ -z "$proxy_on" ]; then
  pcases=""
elif [ -x "$build/proxy_server" ]; then
  start_proxies
  pr_list="pr_up $proxies"
else
  failure "build/proxy_server missing (run make -C bench)"
  pcases=""
fi
for s in $echo_servers $http_servers $pr_list; do
  set -- $(state "$s")
  case $1 in
  up) say "bench: $(label "$s") on port $3 (pid $2${4:+; CPU of $4})" ;;
  *) shift; say "bench: $(label "$s"): $*" ;;
  esac
done

# Interleaved: run r of every case on every server, then run r+1.
r=1
while [ $r -le "$RUNS" ]; do
  for k in $cases; do
    for s in $echo_servers; do
      runs_case "$k" "$s" || continue
      say "bench: run $r/$RUNS: $k on $s"
      run_echo "$k" "$s" "$r"
    done
  done
  for k in $pcases; do
    for s in $proxies; do
      say "bench: run $r/$RUNS: $k through $s"
      run_proxy "$k" "$s" "$r"
    done
  done
  if command -v wrk >/dev/null; then
    for h in $http_cases; do
      for s in $http_servers; do
        say "bench: run $r/$RUNS: $h on $s"
        run_http "$h" "$s" "$r"
      done
    done
    if [ -n "$hclient_on" ]; then
      say "bench: run $r/$RUNS: hclient (wrk, then http.request) on nginx"
      run_hclient "$r"
    fi
  fi
  r=$((r + 1))
done
for s in $echo_servers $http_servers $pr_list; do stop "$s"; done

# Memory: one run on a fresh server each.
idle_skip=""
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt $((IDLE + 100)) ]; then
  idle_skip="open-file limit $(ulimit -n) < $IDLE"
  say "bench: skipping the idle case: $idle_skip"
else
  [ -n "$idle_on" ] && for s in $echo_servers; do
    [ "$s" = lh_net_w2 ] && continue
    say "bench: idle: $IDLE connections on $s"
    run_idle "$s"
  done
fi

# HTTP keep-alive connections idle after one request: one run each.
if [ -n "$hidle_on" ] && [ "$(ulimit -n)" != unlimited ] &&
   [ "$(ulimit -n)" -lt $((HIDLE + 100)) ]; then
  say "bench: skipping the hidle case: open-file limit $(ulimit -n)"
  hidle_on=""
fi
[ -n "$hidle_on" ] && for s in $http_servers; do
  case $s in lh_http_w2) continue ;; esac
  say "bench: hidle: $HIDLE keep-alive connections on $s"
  run_hidle "$s"
done

# TLS: bench/tls_bench.lua against nginx, its own servers and clients
# (openssl s_time, curl), the same core split, RUNS interleaved runs.
tls_skip=""
if [ -n "$tls_on" ]; then
  for t in nginx openssl curl; do
    command -v $t >/dev/null || tls_skip="${tls_skip:+$tls_skip, }$t not installed"
  done
  [ -x "$LUAHOST" ] || tls_skip="$LUAHOST missing"
  if [ -n "$tls_skip" ]; then
    say "bench: skipping the TLS case: $tls_skip"
  else
    say "bench: TLS: handshakes, bulk and idle memory against nginx"
    (cd "$top" && BENCH_DURATION=$DUR BENCH_RUNS=$RUNS \
      "$LUAHOST" bench/tls_bench.lua) >"$tmp/tls.md" ||
      failure "TLS: bench/tls_bench.lua failed (see above)"
  fi
fi

# {=========================================================================
# The report
# ==========================================================================
report() {
  cpu=$(sed -n 's/^model name[^:]*: //p' /proc/cpuinfo | head -n 1)
  echo "Measured $(date -u '+%Y-%m-%d %H:%M UTC') on $(nproc) CPUs ($cpu)," \
       "Linux $(uname -r); luahost $(git -C "$top" describe --always --dirty 2>/dev/null || echo '?')," \
       "libuv $(pkg-config --modversion libuv 2>/dev/null || echo '?')," \
       "$RUNS runs of ${DUR} s per case (after ${WARM} s warm-up), medians;" \
       "the run took $(( $(date +%s) - started )) s."
  echo
  if [ "$selftest_ok" = " corrupt:10000 close:10000" ]; then
    echo "Self-test passed: the load generator caught a flipped byte and an"
    echo "early close from a fault-injecting server before anything was measured."
  else
    echo "**Self-test FAILED: the load generator missed an injected fault.**"
  fi
  other=$(sed -n 's/.*other_cpu_pct=\([0-9]*\).*/\1/p' "$res" | sort -n |
    awk '{ a[NR] = $1 } END { if (NR) printf "%d %d", a[int((NR + 1) / 2)], a[NR] }')
  if [ -n "$other" ]; then
    set -- $other
    echo
    echo "Other processes used a median $1% (at most $2%) of a core during the"
    echo "measured windows (\"other load\": machine busy time, steal included, less"
    echo "server and client)."
    [ "$2" -gt 20 ] && echo "**The machine was not quiet: these numbers are noisy; rerun on an idle machine to trust small differences.**"
  fi
  if [ -n "$cases" ]; then
    echo
    echo "### TCP echo (build/loadgen; ratios: msgs/s and MB/s higher is better, CPU lower is better)"
    echo
    echo_table
  fi
  if [ -n "$http_on" ]; then
    echo
    echo "### HTTP GET /hello (wrk -t1 -c50, keep-alive; \"distinct\": every request has its own X-Request-Id header)"
    echo
    if command -v wrk >/dev/null; then http_table
    else echo "wrk not installed: n/a"; fi
  fi
  if [ -n "$hclient_on" ]; then
    echo
    echo "### HTTP client: GET /hello from nginx, 50 at a time, keep-alive (bench/http_client_bench.lua against wrk)"
    echo
    if command -v wrk >/dev/null; then hclient_table
    else echo "wrk not installed: n/a"; fi
  fi
  if [ -n "$pcases" ]; then
    echo
    echo "### TCP proxy: loadgen (core $CLI_CPU) -> proxy (core $SRV_CPU) -> C echo server (core $CLI_CPU); \"per MiB\": of echo loadgen received, each byte having crossed the proxy twice"
    echo
    proxy_table
  fi
  if [ -n "$idle_on" ]; then
    echo
    echo "### Memory: $IDLE idle connections, each handler waiting in a read"
    echo
    idle_table
  fi
  if [ -n "$hidle_on" ]; then
    echo
    echo "### Memory: $HIDLE idle HTTP keep-alive connections, each after one request (bench/http_idle.py)"
    echo
    hidle_table
  fi
  if [ -n "$tls_on" ]; then
    echo
    echo "### TLS against nginx (bench/tls_bench.lua; servers on core $SRV_CPU, clients on core $CLI_CPU)"
    echo
    if [ -n "$tls_skip" ]; then echo "n/a: $tls_skip"
    else cat "$tmp/tls.md"; fi
  fi
}
report >"$tmp/report.md"
echo
cat "$tmp/report.md"
if [ "$README" != - ]; then
  if grep -q '^<!-- results -->' "$README" 2>/dev/null; then
    sed '/^<!-- results -->/q' "$README" >"$tmp/readme"
  else
    printf '# make bench\n\n<!-- results -->\n' >"$tmp/readme"
  fi
  { cat "$tmp/readme"; echo; cat "$tmp/report.md"; } >"$README"
  say "bench: results written to $README"
fi
if [ $failed != 0 ]; then
  say "bench: correctness failures (see above): exit 1"
  exit 1
fi
exit 0
