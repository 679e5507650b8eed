"""What the comparison drivers share (files_nginx_diff.py,
proxy_nginx_diff.py, h11_*.py): a free loopback port, nginx started with a
server block of the caller's in its own prefix (stopped by PID), a raw
request read to the end."""
import os
import signal
import socket
import subprocess
import time


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def start_nginx(work, server):
    """nginx in prefix work, one process, no access log, with the server
    block server (its %(port)d is filled in); returns (process, port) once
    it accepts connections."""
    port = free_port()
    conf = os.path.join(work, "nginx.conf")
    with open(conf, "w") as f:
        f.write("""daemon off;
worker_processes 1;
pid %(w)s/nginx.pid;
error_log %(w)s/error.log;
events { worker_connections 64; }
http {
  access_log off;
  client_body_temp_path %(w)s/body;
  proxy_temp_path %(w)s/proxy;
  fastcgi_temp_path %(w)s/fastcgi;
  uwsgi_temp_path %(w)s/uwsgi;
  scgi_temp_path %(w)s/scgi;
  server {
%(server)s
  }
}
""" % {"w": work, "server": server % {"port": port}})
    proc = subprocess.Popen(["nginx", "-e", os.path.join(work, "error.log"),
                             "-p", work, "-c", conf],
                            stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    for _ in range(200):  # until it listens (10 s at most)
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.05)
    return proc, port


def stop(procs):
    """SIGTERM to each process still running, then wait (a KILL after
    10 s)."""
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def exchange(port, data, timeout=10):
    """data sent on a new connection, half-closed, and all that comes back
    until the server closes (a reset ends it too)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        got = b""
        while True:
            try:
                b = s.recv(65536)
            except (ConnectionResetError, socket.timeout):
                break
            if not b:
                break
            got += b
        return got
    finally:
        s.close()
