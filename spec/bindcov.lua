--[[
spec/bindcov.lua: binding coverage, after luv's .ci/bindcov.sh. Run by
`make lint` inside luahost. Checks that every function the design promises
(DESIGN.md "Low level" and the uv issue's scope) exists in the uv table, and
that every function of the uv table is named in at least one spec. Prints
what is missing and exits 1 if anything is, unless it is on the skip list
below with a reason.
]]
local uv = require "uv"

local promised = [[
run stop now update_time hrtime loop_alive walk
close is_active is_closing ref unref has_ref fileno send_buffer_size
recv_buffer_size handle_get_type
new_timer timer_start timer_stop timer_again timer_set_repeat
timer_get_repeat timer_get_due_in
new_idle idle_start idle_stop new_prepare prepare_start prepare_stop
new_check check_start check_stop new_async async_send
new_signal signal_start signal_start_oneshot signal_stop
listen accept read_start read_stop write write2 try_write shutdown
is_readable is_writable stream_get_write_queue_size stream_set_blocking
new_tcp tcp_open tcp_nodelay tcp_keepalive tcp_simultaneous_accepts
tcp_bind tcp_getsockname tcp_getpeername tcp_connect tcp_close_reset
socketpair
new_udp udp_open udp_bind udp_send udp_try_send udp_recv_start
udp_recv_stop udp_connect udp_getsockname udp_getpeername
udp_set_broadcast udp_set_ttl udp_set_multicast_ttl udp_set_multicast_loop
udp_set_multicast_interface udp_set_membership udp_set_source_membership
udp_get_send_queue_size udp_get_send_queue_count
new_pipe pipe_open pipe_bind pipe_connect pipe_getsockname pipe_getpeername
pipe_chmod pipe_pending_instances pipe_pending_count pipe_pending_type
new_poll new_socket_poll poll_start poll_stop
getaddrinfo getnameinfo
spawn process_kill kill new_tty tty_set_mode tty_get_winsize guess_handle
interface_addresses os_gethostname os_uname if_indextoname if_indextoiid
os_getpid version version_string exepath cwd chdir
getservbyname getservbyport getprotobyname getprotobynumber
cancel req_get_type
fs_open fs_close fs_read fs_write fs_unlink fs_mkdir fs_mkdtemp fs_mkstemp
fs_rmdir fs_scandir fs_scandir_next fs_opendir fs_readdir fs_closedir
fs_stat fs_fstat fs_lstat fs_statfs fs_rename fs_fsync fs_fdatasync
fs_ftruncate fs_sendfile fs_access fs_chmod fs_fchmod fs_utime fs_futime
fs_lutime fs_link fs_symlink fs_readlink fs_realpath fs_chown fs_fchown
fs_lchown fs_copyfile
new_fs_event fs_event_start fs_event_stop fs_event_getpath
new_fs_poll fs_poll_start fs_poll_stop fs_poll_getpath
new_thread thread_join thread_self thread_equal new_work queue_work
loop_configure loop_mode loop_close metrics_idle_time getpid setuid setgid
get_process_title set_process_title print_all_handles print_active_handles
translate_sys_error disable_stdio_inheritance tty_get_vterm_state
tty_set_vterm_state
]]

-- Functions not required to appear in a spec, each with its reason.
local skip = {
  backend_fd = "exposes an fd number only; used by embedders",
  backend_timeout = "a number that depends on pending timers only",
}

local p = assert(io.popen("cat spec/*_spec.lua"))
local all_specs = p:read("a")
p:close()

local missing, untested = {}, {}
for name in promised:gmatch("%S+") do
  if uv[name] == nil then missing[#missing + 1] = name end
end
local names = {}
for name, v in pairs(uv) do
  if type(v) == "function" then names[#names + 1] = name end
end
table.sort(names)
for _, name in ipairs(names) do
  -- named as uv.name, or as a method (the part after the type prefix)
  local short = name:match("^[a-z]+_(.+)$")
  local found = all_specs:find(name, 1, true) or
    (short and all_specs:find(":" .. short .. "(", 1, true))
  if not found and not skip[name] then untested[#untested + 1] = name end
end

if #missing > 0 then
  print("bindcov: promised but missing from uv: " ..
    table.concat(missing, " "))
end
if #untested > 0 then
  print("bindcov: in uv but named in no spec: " ..
    table.concat(untested, " "))
end
print(("bindcov: %d uv functions, %d promised missing, %d untested"):format(
  #names, #missing, #untested))
os.exit((#missing == 0 and #untested == 0) and 0 or 1)
