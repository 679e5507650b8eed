"""spec/pty_drive.py LUAHOST STEPS_JSON [ARGS...]: run LUAHOST ARGS (default
-i) on a pseudo-terminal, as a person at a terminal would.

STEPS_JSON is a list of [send, expect]: write `send` to the terminal, then
read until the regular expression `expect` matches what came out since
(10 s at most each). Then wait for the process to end (10 s). Prints
"exit N" on success; on a missed expectation prints what came out and exits
1. Every wait is bounded; the child is killed if it outlives the driver.
"""
import json, os, pty, re, select, signal, sys, time

luahost, steps = sys.argv[1], json.loads(sys.argv[2])
args = sys.argv[3:] or ["-i"]
pid, fd = pty.fork()
if pid == 0:
    os.environ["TERM"] = "xterm"
    os.execv(luahost, [luahost] + args)

def fail(msg, seen):
    sys.stdout.write("FAIL: %s\n--- output ---\n%r\n" % (msg, seen))
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    sys.exit(1)

def read_until(pattern, seconds=10.0):
    seen, end = b"", time.time() + seconds
    while time.time() < end:
        if pattern and re.search(pattern.encode(), seen, re.S):
            return seen
        r, _, _ = select.select([fd], [], [], 0.1)
        if r:
            try:
                data = os.read(fd, 4096)
            except OSError:
                break
            if not data:
                break
            seen += data
    if pattern and re.search(pattern.encode(), seen, re.S):
        return seen
    if pattern:
        fail("no match for %r" % pattern, seen)
    return seen

read_until(r"> $")
for send, expect in steps:
    os.write(fd, send.encode())
    read_until(expect)
end = time.time() + 10
while time.time() < end:
    done, status = os.waitpid(pid, os.WNOHANG)
    if done:
        print("exit %d" % (os.WEXITSTATUS(status) if os.WIFEXITED(status)
                           else 128 + os.WTERMSIG(status)))
        sys.exit(0)
    read_until(None, 0.1)
fail("still running at the end", b"")
