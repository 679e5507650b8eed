"""http_h11_diff_spec's driver: the same seeded random requests (valid
ones and near misses: request lines, field lines, framing, chunked
bodies, a second request pipelined after the first) sent to luahost's
http server (spec/support/h11_echo_server.lua, which answers what it
read) and given to h11, a strict HTTP/1.1 parser (RFC 9112), as a server
reads them. Each request goes on a connection of its own, half-closed
after it.

usage: /usr/bin/python3 h11_diff.py PORT SEED N

Where the two differ, the difference must be one of the rules luahost
holds requests to where h11 is lenient, or follows where h11 is strict
(strict_rules, lenient_rules: each one the RFCs allow a server); any
other difference is printed, a line each: "DIFF <request> | h11: ... |
luahost: ...". Then how many each rule explained, and "checked N, same
S (read alike R), differ D"."""
import random
import re
import sys

import h11

import peers

port, seed, count = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
rng = random.Random(seed)


def pick(*options):
    return rng.choice(options)


METHODS = [b"GET", b"POST", b"PUT", b"DELETE", b"OPTIONS", b"PATCH",
           b"PROPFIND", b"get", b"G(T", b"", b"GET\x00"]
TARGETS = [b"/", b"/a/b?c=d&e", b"/%41%2f", b"/a b", b"/\x7f", b"/\xc3\xa9",
           b"/#frag", b"", b"*", b"http://h.example/x?y", b"h.example:80",
           b"//x", b"/a?b#c", b"/~!$&'()*+,;=:@"]
VERSIONS = [b"HTTP/1.1", b"HTTP/1.0", b"HTTP/1.2", b"HTTP/2.0", b"http/1.1",
            b"HTTP/1.1 ", b"HTTP/11", b"HTTP/1", b"HTTP/0.9"]
NAMES = [b"X-A", b"x-b", b"Accept", b"User-Agent", b"X(A)", b"X A",
         b"X-A ", b"", b"X\x01", b"X-\xc3\xa9", b"X_A", b"!#$%&'*+-.^_`|~"]
VALUES = [b"v", b"", b" v ", b"\tv\t", b"a, b", b"a\x01b", b"a\x7fb",
          b"\xc3\xa9", b"a:b", b"a  b", b"a\rb", b"a\x00b", b'"q"', b"v\t"]
CL_VALUES = [b"{n}", b"0{n}", b" {n}", b"{n} ", b"+{n}", b"{n},{n}",
             b"-1", b"", b"{n}x", b"1{n}"]
TE_VALUES = [b"chunked", b"Chunked", b"gzip, chunked", b"chunked, gzip",
             b"identity", b" chunked", b"chunked,", b"chunked, chunked",
             b"x-y", b"chunked;q=1"]
SIZES = [b"{x}", b"{X}", b"0{x}", b"{x};ext=1", b"{x} ;e", b"{x};", b"g",
         b"-{x}", b"0x{x}", b" {x}", b"{x} ", b""]


def eol():
    return rng.choices([b"\r\n", b"\n", b"\r"], [96, 3, 1])[0]


def fields_and_body():
    """The field lines (a list of bytes lines) and the bytes after the
    empty line."""
    lines = []
    if rng.random() < 0.9:
        lines.append(b"Host: " + (pick(b"h.example", b"h.example:8080",
                                       b"127.0.0.1", b"[::1]:80", b"")
                                  if rng.random() < 0.95 else
                                  pick(b"a b", b"a@b", b"h:x", b"[::1")))
        if rng.random() < 0.03:
            lines.append(b"Host: h.example")
    for _ in range(rng.randrange(0, 4)):
        if rng.random() < 0.9:
            name, value = pick(b"X-A", b"x-b", b"Accept"), b"v" + bytes(
                [rng.randrange(0x61, 0x7b)])
        else:
            name, value = pick(*NAMES), pick(*VALUES)
        sep = rng.choices([b":", b": ", b":  ", b" :", b":\t"],
                          [30, 60, 4, 3, 3])[0]
        lines.append(name + sep + value)
        if rng.random() < 0.03:
            lines.append(pick(b" folded", b"\tfolded"))
    body = rng.choice([b"", b"hello", b"x" * 40, bytes(range(256))[:30]])
    framing = rng.choices(["none", "cl", "te", "both"], [30, 35, 30, 5])[0]
    tail = b""
    if framing in ("cl", "both"):
        n = len(body)
        if rng.random() < 0.1:
            n = rng.randrange(0, 50)
        v = b"{n}" if rng.random() < 0.9 else pick(*CL_VALUES)
        lines.append(b"Content-Length: " + v.replace(b"{n}",
                                                    str(n).encode()))
        if rng.random() < 0.03:
            lines.append(b"Content-Length: " + str(n).encode())
        tail = body
    if framing in ("te", "both"):
        v = b"chunked" if rng.random() < 0.9 else pick(*TE_VALUES)
        lines.append(pick(b"Transfer-Encoding", b"transfer-encoding") +
                     b": " + v)
        tail = chunked(body)
    rng.shuffle(lines)
    return lines, tail


def chunked(body):
    out = []
    i = 0
    while i < len(body):
        n = rng.randrange(1, len(body) - i + 1)
        size = b"{x}" if rng.random() < 0.95 else pick(*SIZES)
        size = size.replace(b"{x}", b"%x" % n).replace(b"{X}", b"%X" % n)
        out.append(size + eol() + body[i:i + n] + eol())
        i += n
    last = b"0" if rng.random() < 0.95 else pick(b"00", b"0;e=1", b"0 ")
    out.append(last + eol())
    for _ in range(rng.choices([0, 1, 2], [85, 10, 5])[0]):
        out.append(pick(b"X-T: v", b"X-T v", b"Content-Length: 5",
                        b" fold") + eol())
    if rng.random() < 0.97:
        out.append(eol())
    return b"".join(out)


def make_request():
    method = b"GET" if rng.random() < 0.45 else (
        b"POST" if rng.random() < 0.8 else pick(*METHODS))
    target = (b"/" + bytes(rng.choice(b"abc/?=&%") for _ in
                           range(rng.randrange(0, 8)))
              if rng.random() < 0.85 else pick(*TARGETS))
    version = b"HTTP/1.1" if rng.random() < 0.92 else pick(*VERSIONS)
    sp = b" " if rng.random() < 0.97 else pick(b"  ", b"\t")
    lines, tail = fields_and_body()
    head = method + sp + target + b" " + version + eol()
    for line in lines:
        head += line + eol()
    req = head + eol() + tail
    if rng.random() < 0.3:   # a second request after it, read if kept alive
        req += b"GET /second HTTP/1.1\r\nHost: h.example\r\n\r\n"
    return req


def h11_view(data):
    """What h11 reads of data followed by the end of the stream, as a
    server answering each request: a list of ("ok", (method, target,
    version, [(name, value)], body)) for each request read, ending with
    ("error", why) when one is refused (or cut short)."""
    conn = h11.Connection(h11.SERVER)
    conn.receive_data(data)
    conn.receive_data(b"")
    out, req, body = [], None, b""
    try:
        while True:
            ev = conn.next_event()
            if isinstance(ev, h11.Request):
                req, body = ev, b""
            elif isinstance(ev, h11.Data):
                body += ev.data
            elif isinstance(ev, h11.EndOfMessage):
                fields = [(n.lower(), v) for n, v in req.headers.raw_items()]
                out.append(("ok", (req.method, req.target,
                                   b"HTTP/" + req.http_version, fields,
                                   body)))
                conn.send(h11.Response(status_code=200,
                                       headers=[("content-length", "0")]))
                conn.send(h11.EndOfMessage())
                if conn.our_state is not h11.DONE:
                    return out    # closing: nothing more is read
                conn.start_next_cycle()
            elif isinstance(ev, h11.ConnectionClosed):
                return out        # the end, between requests
            elif ev is h11.NEED_DATA:
                return out + [("error", "incomplete")]
    except h11.RemoteProtocolError as e:
        return out + [("error", str(e))]


def parse_echo(text):
    items = dict(M=b"", T=b"", V=b"", B=b"")
    fields = []
    for line in text.splitlines():
        k, v = line[0], line[2:]
        if k == "H":
            n, x = v.split(":")
            n, x = bytes.fromhex(n).lower(), bytes.fromhex(x)
            # (h11 gives Transfer-Encoding's value in lower case)
            fields.append((n, x.lower() if n == b"transfer-encoding" else x))
        elif k == "V":
            items[k] = v.encode()
        else:
            items[k] = bytes.fromhex(v)
    return "ok", (items["M"], items["T"], items["V"], fields, items["B"])


def luahost_view(data):
    """The same list, from the answers luahost sent on one connection."""
    got = peers.exchange(port, data)
    out = []
    while got:
        head, sep, rest = got.partition(b"\r\n\r\n")
        m = re.match(rb"HTTP/1\.1 (\d{3}) ", head)
        n = re.search(rb"\r\nContent-Length: (\d+)", head)
        if not (m and sep and n):
            return out + [("error", "a bad answer %r" % got[:100])]
        body, got = rest[:int(n.group(1))], rest[int(n.group(1)):]
        if m.group(1) != b"200":
            return out + [("error", head.split(b"\r\n", 1)[0].decode())]
        out.append(parse_echo(body.decode()))
    return out


def split_request(data):
    """The request line, the field lines and the bytes after the head,
    lines split at LF with a CR before it dropped (as both read them)."""
    lines, rest = [], data
    while True:
        i = rest.find(b"\n")
        if i < 0:
            return (lines[0] if lines else b""), lines[1:], b""
        line, rest = rest[:i], rest[i + 1:]
        if line.endswith(b"\r"):
            line = line[:-1]
        if line == b"" and lines:
            return lines[0], lines[1:], rest
        lines.append(line)


CTL = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")


def strict_rules(data):
    """The rules luahost holds a request to where h11 is lenient (each
    allowed by RFC 9110/9112 to a server): a request they apply to may be
    refused by luahost and read by h11."""
    rules = set()
    line, fields, body = split_request(data)
    parts = line.split(b" ")
    method = parts[0] if parts else b""
    target = parts[1] if len(parts) > 1 else b""
    version = parts[2] if len(parts) > 2 else b""
    if not re.fullmatch(rb"[A-Z_-]+", method):
        rules.add("method-case")      # methods are upper-case tokens
    if b"#" in target:
        rules.add("fragment")         # a fragment is never sent (3986)
    if target == b"*" and method != b"OPTIONS":
        rules.add("star-target")      # 9112 3.2.4
    if re.fullmatch(rb"[^/*][^/]*:[0-9]+", target) and method != b"CONNECT":
        rules.add("authority-form")   # 9112 3.2.3
    if version[:6] == b"HTTP/1" and version not in (b"HTTP/1.0",
                                                    b"HTTP/1.1"):
        rules.add("version-1x")       # read as 1.1 (9110 2.5): Host needed
    if version in (b"HTTP/2.0", b"HTTP/0.9"):
        rules.add("version-major")    # 505 (9110 15.6.6)
    names = []
    for f in fields:
        if f[:1] in (b" ", b"\t"):
            rules.add("obs-fold")     # 9112 5.2: 400 or unfold
            continue
        name, _, value = f.partition(b":")
        names.append(name.lower())
        if name.lower() == b"host" and not re.fullmatch(
                rb"[ \t]*(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9._~!$&'()*+,;=%-]*)"
                rb"(:[0-9]*)?[ \t]*", value):
            rules.add("host-value")   # 9110 7.2: uri-host [":" port]
        if CTL.search(value.strip(b" \t")):
            rules.add("ctl-in-value")  # 9110 5.5: invalid
        if name.lower() == b"content-length" and b"," in value:
            rules.add("cl-repeated")  # 9110 8.6: may be refused
    if names.count(b"content-length") > 1:
        rules.add("cl-repeated")
    te = b"transfer-encoding" in names
    if te and b"content-length" in names:
        rules.add("te-and-cl")        # 9112 6.3: ought to be an error
    if te and version == b"HTTP/1.0":
        rules.add("te-in-http10")     # 9112 6.1: faulty framing
    if te and re.search(rb"(?<!\r)\n", body):
        rules.add("chunked-lf")       # the chunked framing's CRLFs
    if te and re.search(rb"\n[ \t]", body):
        rules.add("obs-fold")         # in the trailer section too
    return rules


def lenient_rules(data):
    """The rules luahost follows where h11 refuses: a request they apply
    to may be read by luahost and refused by h11."""
    rules = set()
    _, fields, body = split_request(data)
    for f in fields:
        name, _, value = f.partition(b":")
        if name.lower() == b"transfer-encoding" and re.search(
                rb"(^|,)[ \t]*(,|$)", value.strip(b" \t")):
            rules.add("te-empty-element")  # 9110 5.6.1: ignored
    if re.search(rb"(^|\n)[0-9a-fA-F]+[ \t]+;", body):
        rules.add("chunk-ext-bws")    # 9112 7.1.1: BWS before ";"
    return rules


def explain(data, h, l):
    """The rules that explain how h (h11's list) and l (luahost's) differ
    (an empty set: unexplained)."""
    for i in range(max(len(h), len(l))):
        a = h[i] if i < len(h) else ("none", None)
        b = l[i] if i < len(l) else ("none", None)
        if a == b:
            continue
        if i > 0:  # the first request read alike: the rest must be too,
            if a[0] != "ok" and b[0] != "ok":
                return {"both-refuse"}  # (or a close with no answer)
            if a[0] == "ok" and b[0] == "error" and not re.fullmatch(
                    rb"[A-Z_-]+", a[1][0]):
                return {"method-case"}  # a body's leftover glued to it
            return set()
        if a[0] == "ok" and b[0] == "ok":
            # HTTP/1.2 and up are read as 1.1, the rest must be equal
            if "version-1x" in strict_rules(data) and (
                    a[1][:2] + (b"HTTP/1.1",) + a[1][3:] == b[1]):
                continue
            return set()
        if a[0] == "ok":
            return strict_rules(data)
        if b[0] == "ok":
            return lenient_rules(data)
        return {"both-refuse"}  # refused by both, for their own reasons
    return {"version-1x"}  # (the one difference, skipped above)


checked = differ = same = read = 0
explained = {}
for i in range(count):
    data = make_request()
    h, l = h11_view(data), luahost_view(data)
    checked += 1
    if [x[0] for x in h] == [x[0] for x in l] and all(
            x[0] == "error" or x == y for x, y in zip(h, l)):
        same += 1
        if h and h[0][0] == "ok":
            read += 1
        continue
    rules = explain(data, h, l)
    for r in rules:
        explained[r] = explained.get(r, 0) + 1
    if not rules:
        differ += 1
        print("DIFF %r | h11: %r | luahost: %r" % (data, h, l))
print("explained: " + ", ".join("%s %d" % kv for kv in
                                sorted(explained.items())))
print("checked %d, same %d (read alike %d), differ %d" % (checked, same,
                                                       read, differ))
