"""http_h11_diff_spec's responses: the client's side of the comparison
with h11 (spec/support/h11_client_run.lua runs luahost's).

  /usr/bin/python3 h11_client_diff.py gen SEED N CASEFILE
      writes N seeded random responses (valid ones and near misses: status
      lines, fields, framing by length, chunks or the close, 1xx before,
      HEAD, 204 and 304), a line each: "METHOD HEX"
  /usr/bin/python3 h11_client_diff.py compare CASEFILE RESULTS
      reads each response as h11 does (a client that sent METHOD) and
      compares with luahost's line; a difference must be one of the rules
      named below, else it is printed ("DIFF ..."); then "checked N, same
      S (read alike R), differ D"."""
import random
import re
import sys

import h11


def gen(seed, count, path):
    rng = random.Random(seed)

    def pick(*o):
        return rng.choice(o)

    def eol():
        return rng.choices([b"\r\n", b"\n", b"\r"], [96, 3, 1])[0]

    def status_line():
        if rng.random() < 0.9:
            return b"HTTP/1.1 " + pick(b"200 OK", b"201 Created", b"404 No",
                                       b"500 Oops", b"204 No Content",
                                       b"304 Not Modified", b"302 Found")
        return pick(b"HTTP/1.0 200 OK", b"HTTP/1.1 200", b"HTTP/1.1 200 ",
                    b"HTTP/1.1 99 x", b"HTTP/1.1 2000 x", b"HTTP/2.0 200 OK",
                    b"http/1.1 200 OK", b"HTTP/1.1  200 OK", b"HTTP/1.1 600 x",
                    b"HTTP/1.1 200 \x01", b"HTTP/1.1 200 caf\xc3\xa9")

    out = []
    for _ in range(count):
        method = b"GET" if rng.random() < 0.85 else b"HEAD"
        lines = [status_line()]
        for _ in range(rng.randrange(0, 3)):
            if rng.random() < 0.9:
                lines.append(pick(b"Server: x", b"X-A: v", b"x-b:  w ",
                                  b"Date: Thu, 01 Jan 2026 00:00:00 GMT"))
            else:
                lines.append(pick(b"X A: v", b"X-A : v", b": v", b"X-A: a\x01b",
                                  b"X-A: a\x7fb", b" folded", b"X-A: \xc3\xa9",
                                  b"X-A:", b"X(A): v"))
        body = pick(b"", b"hello", b"x" * 40, bytes(range(30)))
        framing = rng.choices(["cl", "te", "close", "both"], [45, 35, 15, 5])[0]
        tail = body
        if framing in ("cl", "both"):
            n = len(body) if rng.random() < 0.9 else rng.randrange(0, 50)
            v = str(n).encode() if rng.random() < 0.9 else pick(
                b"0" + str(n).encode(), b"+1", b"-1", b"", b"1,1",
                b" " + str(n).encode(), b"x")
            lines.append(b"Content-Length: " + v)
            if rng.random() < 0.03:
                lines.append(b"Content-Length: " + v)
        if framing in ("te", "both"):
            lines.append(b"Transfer-Encoding: " + (
                b"chunked" if rng.random() < 0.9 else
                pick(b"Chunked", b"gzip, chunked", b"chunked, gzip",
                     b"identity", b"chunked,", b"x")))
            tail = b""
            i = 0
            while i < len(body):
                k = rng.randrange(1, len(body) - i + 1)
                size = b"%x" % k if rng.random() < 0.95 else pick(
                    b"%X" % k, b"0%x" % k, b"%x;e=1" % k, b"%x ;e" % k,
                    b"g", b"-1", b" %x" % k)
                tail += size + eol() + body[i:i + k] + eol()
                i += k
            tail += b"0" + eol()
            if rng.random() < 0.1:
                tail += pick(b"T: v", b"T v", b" fold") + eol()
            if rng.random() < 0.97:
                tail += eol()
        if framing == "close" and rng.random() < 0.5:
            lines.append(b"Connection: close")
        head = b""
        if rng.random() < 0.05:
            head = pick(b"HTTP/1.1 100 Continue\r\n\r\n",
                        b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n")
        rng.shuffle(lines[1:])
        head += eol().join(lines) + eol() + eol()
        out.append(method + b" " + (head + tail).hex().encode())
    with open(path, "wb") as f:
        f.write(b"\n".join(out) + b"\n")


def h11_view(method, data):
    conn = h11.Connection(h11.CLIENT)
    conn.send(h11.Request(method=method, target="/",
                          headers=[("Host", "127.0.0.1")]))
    conn.send(h11.EndOfMessage())
    conn.receive_data(data)
    conn.receive_data(b"")
    res, body = None, b""
    try:
        while True:
            ev = conn.next_event()
            if isinstance(ev, h11.Response):
                res = ev
            elif isinstance(ev, h11.Data):
                body += ev.data
            elif isinstance(ev, h11.EndOfMessage):
                return ("ok", res.status_code, body,
                        [(n.lower(), v.lower() if n == b"transfer-encoding"
                          else v) for n, v in res.headers.raw_items()])
            elif ev is h11.NEED_DATA or isinstance(ev, h11.ConnectionClosed):
                return ("error",)
    except h11.RemoteProtocolError:
        return ("error",)


def luahost_view(line):
    parts = line.split(" ")
    if parts[0] != "ok":
        return ("error",)
    fields = []
    for f in (parts[3].split(",") if len(parts) > 3 and parts[3] else []):
        n, v = f.split(":")
        n, v = bytes.fromhex(n), bytes.fromhex(v)
        fields.append((n, v.lower() if n == b"transfer-encoding" else v))
    return ("ok", int(parts[1]), bytes.fromhex(parts[2]), fields)


CTL = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")


def rules_for(method, data, h, l):
    """The rules (allowed by RFC 9110/9112) that explain h (h11) and l
    (luahost) differing on this response; empty: unexplained."""
    rules = set()
    # (the final head: past any 1xx before it)
    while re.match(rb"HTTP/1\.1 1\d\d ", data) and b"\r\n\r\n" in data:
        data = data.partition(b"\r\n\r\n")[2]
    lines = re.split(rb"\r?\n", data)
    end = lines.index(b"", 1) if b"" in lines[1:] else len(lines)
    fields = lines[1:end]
    m = re.search(rb"\r?\n\r?\n", data)
    body = data[m.end():] if m else b""
    names = [x.split(b":")[0].lower() for x in fields]
    te = [x.partition(b":")[2].strip().lower() for x in fields
          if x.split(b":")[0].lower() == b"transfer-encoding"]
    if not re.match(rb"HTTP/1\.[01] ", data):
        rules.add("version-major")    # HTTP/2.0 on an HTTP/1.1 connection
    if te and data.startswith(b"HTTP/1.0"):
        rules.add("te-in-http10")     # 9112 6.1: faulty framing
    codings = [c.strip() for c in b",".join(te).split(b",") if c.strip()]
    if codings and codings[-1] != b"chunked" and l[0] == "ok":
        # 9112 6.3: a final coding other than chunked: to the close
        # (h11 refuses any Transfer-Encoding but chunked)
        rules.add("te-to-close")
    for x in fields:
        if x[:1] in (b" ", b"\t"):
            rules.add("obs-fold")
        name, _, value = x.partition(b":")
        if CTL.search(value.strip(b" \t")):
            rules.add("ctl-in-value")
        if name.lower() == b"content-length" and b"," in value:
            rules.add("cl-repeated")
    if names.count(b"content-length") > 1:
        rules.add("cl-repeated")
    if b"transfer-encoding" in names and b"content-length" in names:
        rules.add("te-and-cl")
    if re.search(rb"\r\n[0-9a-fA-F]+[ \t]+;|^[0-9a-fA-F]+[ \t]+;", body):
        rules.add("chunk-ext-bws")
    if re.search(rb"(?i)transfer-encoding: *chunked,", data):
        rules.add("te-empty-element")
    if b"transfer-encoding" in names and re.search(rb"(?<!\r)\n", body):
        rules.add("chunked-lf")
    if re.search(rb"\n[ \t]", body):
        rules.add("obs-fold")
    if data.startswith(b"HTTP/1.1 200 \x01"):
        rules.add("ctl-in-reason")
    return rules


def compare(case_path, result_path):
    cases = open(case_path, "rb").read().split(b"\n")[:-1]
    results = open(result_path).read().split("\n")[:-1]
    assert len(cases) == len(results), (len(cases), len(results))
    checked = same = read = differ = 0
    explained = {}
    for case, result in zip(cases, results):
        method, hexdata = case.split(b" ")
        data = bytes.fromhex(hexdata.decode())
        h, l = h11_view(method, data), luahost_view(result)
        checked += 1
        if h == l:
            same += 1
            read += h[0] == "ok"
            continue
        rules = rules_for(method, data, h, l)
        for r in rules:
            explained[r] = explained.get(r, 0) + 1
        if not rules:
            differ += 1
            print("DIFF %s %r | h11: %r | luahost: %r" % (method.decode(),
                                                          data, h, l))
    print("explained: " + ", ".join("%s %d" % kv
                                    for kv in sorted(explained.items())))
    print("checked %d, same %d (read alike %d), differ %d" % (
        checked, same, read, differ))


if sys.argv[1] == "gen":
    gen(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])
else:
    compare(sys.argv[2], sys.argv[3])
