"""http_h11_diff_spec's server responses: h11, as a client, reads what
luahost's server sends for every way a handler frames a response
(spec/support/h11_recipe_server.lua answers as each request's query
says: res:send, res:status + res:send, res:write pieces + finish,
sendfile, no body, no answer at all; with or without a Content-Length
the handler sets, gzip, extra fields), to GET and HEAD, HTTP/1.1 and
1.0, 1 to 3 requests pipelined on a connection (bodies left unread or
read), then a half-close.

usage: /usr/bin/python3 h11_response_diff.py PORT SEED N

Every response must be one h11 reads without a protocol error; its
status and body (gunzipped when it says gzip) must be the recipe's when
the recipe is a valid one; every request sent must be answered unless it
follows one that ends the connection. A line a failure ("BAD ..."), then
"checked N, bad B"."""
import gzip
import random
import sys

import h11

import peers

port, seed, count = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
rng = random.Random(seed)


def body_of(n):
    return bytes(97 + i % 26 for i in range(n))


def make_request(last):
    status = rng.choice([200, 200, 200, 201, 204, 304, 404, 500, 302])
    mode = rng.choice(["send", "send", "sendnil", "write", "write", "empty",
                       "nothing", "file"])
    n = rng.choice([0, 1, 5, 300, 5000, 70000])
    q = {"s": status, "mode": mode, "n": n}
    if rng.random() < 0.3:
        q["h"] = rng.randrange(1, 4)
    if rng.random() < 0.5:
        q["ct"] = "text"
    if rng.random() < 0.3 and mode in ("send", "sendnil", "write"):
        q["cl"] = 1
    if mode == "write":
        q["p"] = rng.choice([1, 2, 7])
    method = b"HEAD" if rng.random() < 0.15 else (
        b"POST" if rng.random() < 0.2 else b"GET")
    reqbody = b""
    if method == b"POST":
        reqbody = body_of(rng.choice([0, 10, 3000]))
        if rng.random() < 0.5:
            q["drain"] = 1
    version = b"HTTP/1.0" if rng.random() < 0.1 and last else b"HTTP/1.1"
    close = last and rng.random() < 0.2
    gz = rng.random() < 0.3
    target = "/r?" + "&".join("%s=%s" % kv for kv in sorted(q.items()))
    head = [method + b" " + target.encode() + b" " + version,
            b"Host: h.example"]
    if gz:
        head.append(b"Accept-Encoding: gzip")
    if close:
        head.append(b"Connection: close")
    elif version == b"HTTP/1.0":
        pass  # (1.0 without keep-alive: the server closes)
    if method == b"POST":
        head.append(b"Content-Length: %d" % len(reqbody))
    raw = b"\r\n".join(head) + b"\r\n\r\n" + reqbody
    h11_headers = [("Host", "h.example")]
    if gz:
        h11_headers.append(("Accept-Encoding", "gzip"))
    if close or version == b"HTTP/1.0":
        h11_headers.append(("Connection", "close"))
    if method == b"POST":
        h11_headers.append(("Content-Length", str(len(reqbody))))
    return dict(q=q, method=method, raw=raw, body=reqbody,
                h11=h11.Request(method=method, target=target,
                                headers=h11_headers))


def expected(r):
    """(status, body) a valid recipe must give, or None when the recipe
    asks for something the server may refuse (a body on 204/304)."""
    q = r["q"]
    status, mode, n = q["s"], q["mode"], q["n"]
    if mode == "nothing":
        return None  # (whatever the server says for a silent handler)
    if mode == "empty":
        n = 0
    if status in (204, 304) and n > 0:
        return None
    if mode == "file" and status != 200:
        return None
    body = body_of(n)
    if r["method"] == b"HEAD" or status in (204, 304):
        body = b""
    return status, body


def exchange(reqs):
    return peers.exchange(port, b"".join(r["raw"] for r in reqs))


def check(reqs, got):
    """A list of what is wrong (empty: all well)."""
    conn = h11.Connection(h11.CLIENT)
    conn.receive_data(got)
    conn.receive_data(b"")
    for i, r in enumerate(reqs):
        conn.send(r["h11"])
        if r["body"]:
            conn.send(h11.Data(data=r["body"]))
        conn.send(h11.EndOfMessage())
        res, body = None, b""
        try:
            while True:
                ev = conn.next_event()
                if isinstance(ev, h11.Response):
                    res = ev
                elif isinstance(ev, h11.InformationalResponse):
                    continue
                elif isinstance(ev, h11.Data):
                    body += ev.data
                elif isinstance(ev, h11.EndOfMessage):
                    break
                else:
                    return ["request %d: no answer (%r)" % (i + 1, ev)]
        except h11.RemoteProtocolError as e:
            return ["request %d: %s" % (i + 1, e)]
        hdrs = dict(res.headers)
        if hdrs.get(b"content-encoding") == b"gzip" and body:
            try:
                body = gzip.decompress(body)
            except OSError as e:
                return ["request %d: bad gzip: %s" % (i + 1, e)]
        want = expected(r)
        if want and (res.status_code, body) != want:
            return ["request %d: got %d %r..., want %d %r..." % (
                i + 1, res.status_code, body[:20], want[0], want[1][:20])]
        if conn.our_state is h11.MUST_CLOSE or \
                conn.their_state is h11.MUST_CLOSE:
            return []  # the connection ends here: what follows is unread
        if conn.their_state is not h11.DONE:
            return ["request %d: the response is not done" % (i + 1)]
        conn.start_next_cycle()
    return []


bad = 0
for k in range(count):
    reqs = [make_request(i == 2) for i in range(3)][:rng.randrange(1, 4)]
    if len(reqs) < 3:  # (only the last may close)
        reqs = [make_request(False) for _ in range(len(reqs) - 1)] + \
            [make_request(True)]
    got = exchange(reqs)
    problems = check(reqs, got)
    if problems:
        bad += 1
        print("BAD %s | %s | %r" % (
            " ; ".join(r["raw"].split(b"\r\n")[0].decode() for r in reqs),
            problems[0], got[:300]))
print("checked %d, bad %d" % (count, bad))
