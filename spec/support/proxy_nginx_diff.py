"""net_proxy_spec's comparison with nginx: the same seeded random PROXY
protocol headers (v1 and v2, valid ones and near misses) sent before
"GET / HTTP/1.0" to nginx (`listen ... proxy_protocol`, answering
$proxy_protocol_addr and _port) and to luahost (spec/support/
proxy_app.lua, answering conn:peername() and conn:proxyname()).

usage: /usr/bin/python3 proxy_nginx_diff.py LUAHOST WORKDIR SEED N

Rules: when both accept a header they name the same client (or both
none: LOCAL, UNKNOWN, UNSPEC); luahost accepts no header nginx refuses;
where nginx accepts and luahost refuses, the header breaks a rule of
the protocol's text (haproxy's proxy-protocol.txt) that luahost holds
and nginx does not (see lenient()). A line each for anything else
("DIFF ..."), then "checked N, accepted alike A, differ D"."""
import ipaddress
import os
import random
import re
import struct
import subprocess
import sys

import peers

luahost, work, seed, count = sys.argv[1], sys.argv[2], int(sys.argv[3]), \
    int(sys.argv[4])
rng = random.Random(seed)


nginx, nport = peers.start_nginx(work, """\
    listen 127.0.0.1:%(port)d proxy_protocol;
    location / { return 200 "peer $proxy_protocol_addr $proxy_protocol_port\\n"; }""")
procs = [nginx]
env = dict(os.environ, PROXY_TIMEOUT="2")
lh = subprocess.Popen([luahost, "spec/support/proxy_app.lua"], env=env,
                      stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
procs.append(lh)


def ask(port, data):
    """The client the server names: ("addr", ip, port), ("local",) when
    it names none, ("refused",) when it closes without an answer."""
    # (half-closed after the request: a header cut short ends at once)
    got = peers.exchange(port, data + b"GET / HTTP/1.0\r\n\r\n")
    m = re.search(rb"\r\n\r\npeer (\S*) (\S*)", got)
    if not m:
        return ("refused",)
    ip, p = m.group(1).decode(), m.group(2).decode()
    if port == lport:
        proxied = re.search(rb"proxy (\S+)", got).group(1) != b"-"
        if not proxied:
            return ("local",)
    elif ip == "":
        return ("local",)
    try:
        ip = str(ipaddress.ip_address(ip))
    except ValueError:
        pass  # (nginx passes on what it did not check)
    return ("addr", ip, int(p) if p.isdigit() else p)


SIG = b"\r\n\r\n\x00\r\nQUIT\n"


def v4():
    return ".".join(str(rng.randrange(0, 256)) for _ in range(4))


def v6():
    return str(ipaddress.IPv6Address(rng.getrandbits(128) if
                                     rng.random() < 0.5 else
                                     rng.getrandbits(16) << 112 | 1))


def v1_header():
    fam = rng.choice(["TCP4", "TCP4", "TCP6", "UNKNOWN"])
    if fam == "UNKNOWN":
        fields = ["PROXY", "UNKNOWN"] + (
            [v4(), v4(), "1", "2"] if rng.random() < 0.5 else [])
    else:
        a, b = (v4(), v4()) if fam == "TCP4" else (v6(), v6())
        fields = ["PROXY", fam, a, b, str(rng.randrange(0, 65536)),
                  str(rng.randrange(0, 65536))]
    if rng.random() < 0.4:  # a near miss
        i = rng.randrange(len(fields))
        fields[i] = rng.choice([
            fields[i].lower(), "0" + fields[i], fields[i] + "0", "",
            "65536", "-1", "256.1.1.1", "1.2.3", "::1", "1.2.3.4",
            "::ffff:1.2.3.4", "01.2.3.4", fields[i] + " ", "TCP5",
            "1.2.3.4%", "0x10", "+80"])
    sep = " " if rng.random() < 0.95 else rng.choice(["  ", "\t"])
    end = "\r\n" if rng.random() < 0.95 else rng.choice(["\n", "\r", ""])
    return (sep.join(fields) + end).encode()


def v2_header():
    cmd = rng.choice([1, 1, 1, 0])  # PROXY, LOCAL
    fam = rng.choice([0x11, 0x11, 0x21, 0x00, 0x12, 0x31, 0x22])
    if fam & 0xF0 == 0x10:
        body = ipaddress.IPv4Address(v4()).packed + \
            ipaddress.IPv4Address(v4()).packed + \
            struct.pack(">HH", rng.randrange(65536), rng.randrange(65536))
    elif fam & 0xF0 == 0x20:
        body = ipaddress.IPv6Address(v6()).packed + \
            ipaddress.IPv6Address(v6()).packed + \
            struct.pack(">HH", rng.randrange(65536), rng.randrange(65536))
    elif fam & 0xF0 == 0x30:
        body = b"/tmp/a".ljust(108, b"\0") + b"/tmp/b".ljust(108, b"\0")
    else:
        body = b""
    if rng.random() < 0.2:  # a TLV
        v = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 9)))
        body += bytes([rng.choice([1, 2, 4, 5, 0x20, 0xE0])]) + \
            struct.pack(">H", len(v)) + v
    ver = 0x20
    length = len(body)
    if rng.random() < 0.3:  # a near miss
        k = rng.randrange(5)
        if k == 0:
            ver = rng.choice([0x10, 0x30])
        elif k == 1:
            cmd = rng.choice([2, 0xF])
        elif k == 2:
            length = max(0, length + rng.choice([-1, -4, 1]))
        elif k == 3:
            body = body[:rng.randrange(len(body) + 1)]
            length = len(body)
        else:
            fam = rng.choice([0x13, 0x10, 0x01, 0x41])
    return SIG + bytes([ver | cmd, fam]) + struct.pack(">H", length) + \
        body[:length] + (b"\0" * max(0, length - len(body)))


def lenient(data):
    """Rules of the protocol luahost holds and nginx does not: a reason,
    or None."""
    if data.startswith(SIG):
        fam = data[13]
        length = struct.unpack(">H", data[14:16])[0]
        cmd = data[12] & 0x0F
        if data[12] & 0xF0 != 0x20:
            return "v2 version"
        if cmd not in (0, 1):
            return "v2 command (LOCAL or PROXY)"
        if cmd == 1 and fam not in (0x00, 0x11, 0x21):
            return "v2 family and protocol (TCP over IPv4 or IPv6)"
        need = {0x11: 12, 0x21: 36}.get(fam, 0)
        if cmd == 1 and length < need:
            return "v2 length short of the addresses"
        return None
    line = data.split(b"\n")[0]
    if not line.endswith(b"\r") or b"\r" in line[:-1]:
        return "v1 CRLF"
    fields = line[:-1].split(b" ")
    if any(f == b"" for f in fields) or b"\t" in line:
        return "v1 one space between fields"
    if len(fields) < 2 or fields[1] not in (b"TCP4", b"TCP6", b"UNKNOWN"):
        return "v1 protocol (TCP4, TCP6 or UNKNOWN)"
    if len(fields) > 2 and fields[1] in (b"TCP4", b"TCP6"):
        if len(fields) != 6:
            return "v1 field count"
        for p in fields[4:6]:
            if not re.fullmatch(rb"0|[1-9][0-9]{0,4}", p) or int(p) > 65535:
                return "v1 port (0..65535, no leading zero)"
        for a in fields[2:4]:
            try:
                ip = ipaddress.ip_address(a.decode())
            except ValueError:
                return "v1 address"
            if (ip.version == 4) != (fields[1] == b"TCP4"):
                return "v1 address of the family named"
            if ip.version == 4 and a.decode() != str(ip):
                return "v1 address"
    return None


try:
    lport = int(lh.stdout.readline().split()[1])
    checked = alike = differ = 0
    for _ in range(count):
        data = v1_header() if rng.random() < 0.5 else v2_header()
        checked += 1
        lv, nv = ask(lport, data), ask(nport, data)
        if lv == nv:
            alike += lv[0] != "refused"
            continue
        why = lenient(data) if lv[0] == "refused" else None
        if not why:
            differ += 1
            print("DIFF %r | luahost %r | nginx %r" % (data, lv, nv))
    print("checked %d, accepted alike %d, differ %d" % (checked, alike,
                                                        differ))
finally:
    peers.stop(procs)
