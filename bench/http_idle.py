#!/usr/bin/python3
"""http_idle.py PID PORT [N]: bytes per idle keep-alive HTTP connection.

Opens N connections (default 2000) to 127.0.0.1:PORT, one at a time (from
127.0.x.y source addresses, 200 per address), each
making one keep-alive GET /hello and reading its whole answer, then holds
them all open; prints (VmRSS after - VmRSS before) / N for process PID
(the server, freshly started), after a short settle. Run by hand.
"""
import socket, sys, time

def rss(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise SystemExit("no VmRSS")

def one(port, i=0):
    # each source address at most 200 times (servers limit connections
    # per client address)
    s = socket.socket()
    s.bind(("127.0.%d.%d" % (1 + i // 200, 2 + i % 200), 0))
    s.connect(("127.0.0.1", port))
    s.sendall(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
    buf = b""
    while b"\r\n\r\n" not in buf:
        d = s.recv(4096)
        if not d:
            raise SystemExit("closed early")
        buf += d
    head, _, body = buf.partition(b"\r\n\r\n")
    n = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            n = int(line.split(b":")[1])
    while len(body) < n:
        body += s.recv(4096)
    return s

def main():
    pid, port = int(sys.argv[1]), int(sys.argv[2])
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 2000
    one(port).close()  # warm: the first request loads what it needs
    time.sleep(0.5)
    before = rss(pid)
    conns = [one(port, i) for i in range(n)]
    time.sleep(1.0)
    after = rss(pid)
    print("conns=%d rss_before_kib=%d rss_after_kib=%d bytes_per_conn=%d"
          % (n, before, after, (after - before) * 1024 // n))
    for c in conns:
        c.close()

main()
