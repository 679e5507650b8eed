# kv_redis_diff_spec's comparer: the same seeded random commands (those
# scripts/kv_server.lua documents, with wrong arities, bad integers,
# repeated and conflicting SET options, glob patterns with escapes) sent
# as RESP to redis-server (a unix socket) and to kv_server.lua (TCP),
# replies compared after reading them whole. Errors are compared by
# their first word (the wording is each server's), TTLs above 0 as
# "positive", KEYS replies as sorted lists. Prints each difference and
# then "differences N".
# usage: kv_compare.py REDIS_SOCKET KV_PORT SEED N
import random
import socket
import sys

redis_sock, kv_port, seed, count = sys.argv[1], int(sys.argv[2]), \
    int(sys.argv[3]), int(sys.argv[4])
rng = random.Random(seed)


def connect(address):
    if isinstance(address, str):
        s = socket.socket(socket.AF_UNIX)
        s.connect(address)
    else:
        s = socket.create_connection(("127.0.0.1", address))
    s.settimeout(10)
    return s, s.makefile("rb")


def send(s, args):
    out = b"*%d\r\n" % len(args)
    for a in args:
        a = a.encode()
        out += b"$%d\r\n%s\r\n" % (len(a), a)
    s.sendall(out)


def read(f):
    line = f.readline()
    if not line:
        return ("EOF",)
    kind, rest = line[:1], line[1:-2]
    if kind in (b"+", b"-"):
        return (kind.decode(), rest)
    if kind == b":":
        return (":", int(rest))
    if kind == b"$":
        n = int(rest)
        return ("$", None if n < 0 else f.read(n + 2)[:-2])
    if kind == b"*":
        n = int(rest)
        return ("*", None if n < 0 else [read(f) for _ in range(n)])
    return ("?", line)


KEYS = ["k", "n", "x", "", "a*b", "h?llo", "[ab]", "k2"]
VALUES = ["v", "1", "-5", "9223372036854775807", "-9223372036854775808",
          "abc", "", "3.5", " 1", "01", "+1", "1e3", "0", "-0",
          "9223372036854775808"]
TIMES = ["100", "0", "-1", "abc", "100000", "9223372036854775807", "01",
         "+5", "1e3"]
PATTERNS = ["*", "k*", "?", "h?llo", "[ab]*", "\\[ab]", "*b", "[a-c]*",
            "[^k]*", "k\\*", "a\\*b", "[", "*[", "h[?]llo"]


def command():
    name = rng.choice(["GET", "SET", "DEL", "EXISTS", "INCR", "DECR",
                       "EXPIRE", "TTL", "KEYS", "DBSIZE", "PING", "ECHO",
                       "set", "get", "SET", "SET", "INCR", "NOPE"])
    key = lambda: rng.choice(KEYS)
    up = name.upper()
    if up in ("GET", "INCR", "DECR", "TTL"):
        args = [name, key()] + ([key()] if rng.random() < 0.1 else [])
    elif up == "SET":
        args = [name, key(), rng.choice(VALUES)]
        while rng.random() < 0.4:
            opt = rng.choice(["EX", "PX", "NX", "XX", "ex", "px", "EX"])
            args.append(opt)
            if opt.upper() in ("EX", "PX") and rng.random() < 0.95:
                args.append(rng.choice(TIMES))
    elif up in ("DEL", "EXISTS"):
        args = [name] + [key() for _ in range(rng.randint(0, 3))]
    elif up == "EXPIRE":
        args = [name, key(), rng.choice(TIMES)]
    elif up == "KEYS":
        args = [name, rng.choice(PATTERNS)]
    elif up == "PING":
        args = [name] + (["hi"] if rng.random() < 0.5 else [])
    elif up == "ECHO":
        args = [name] + (["x"] if rng.random() < 0.8 else [])
    else:
        args = [name, "x"]
    return args


def norm(reply, args):
    up = args[0].upper()
    if reply[0] == "-":
        return ("-", reply[1].split(b" ")[0])
    if reply[0] == ":" and up == "TTL" and reply[1] > 0:
        return (":", "positive")
    if reply[0] == "*" and reply[1] is not None and up == "KEYS":
        return ("*", sorted(x[1] for x in reply[1]))
    return reply


redis, redis_in = connect(redis_sock)
kv, kv_in = connect(kv_port)
for s, f in ((redis, redis_in), (kv, kv_in)):
    send(s, ["FLUSHALL"])
    read(f)
differences = 0
for i in range(count):
    args = command()
    send(redis, args)
    send(kv, args)
    a, b = read(redis_in), read(kv_in)
    if norm(a, args) != norm(b, args):
        differences += 1
        print(i, args, "redis", a, "kv", b)
print("differences", differences)
