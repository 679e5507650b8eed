"""spec/support/pty_pair.py [SECONDS]: hold a pseudo-terminal open for a
spec that needs terminal fds (a uv_tty) without a terminal of its own.

Prints "PID SLAVE_PATH" on one line, then keeps both ends open and reads
(discards) whatever is written to the slave, so a writer on the slave
never blocks. Ends on SIGTERM (the spec stops it by PID), or after
SECONDS (default 300) at most.
"""
import os, pty, select, signal, sys, time

limit = float(sys.argv[1]) if len(sys.argv) > 1 else 300.0
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
master, slave = pty.openpty()
sys.stdout.write("%d %s\n" % (os.getpid(), os.ttyname(slave)))
sys.stdout.flush()
end = time.time() + limit
while time.time() < end:
    r, _, _ = select.select([master], [], [], 0.5)
    if r:
        try:
            os.read(master, 65536)
        except OSError:
            pass
