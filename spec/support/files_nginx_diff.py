"""http_files_spec's comparison with nginx: the same tree (files, an
index, names with a space, a "%" and UTF-8, a dot file, symbolic links
inside and out, a secret file beside the root) served by nginx (`root`)
and by luahost's http.files (spec/support/files_server.lua, index.html
as index), and the same seeded random targets (segments, dot segments
in every spelling, encoded "/", "\\", NUL, bad escapes, doubled
slashes, queries) asked of both on raw sockets.

usage: /usr/bin/python3 files_nginx_diff.py LUAHOST WORKDIR SEED N

Rules: luahost never answers with the secret's bytes; what it serves
(200) is the file nginx serves for that target; where nginx serves and
luahost does not, the target must go through a link that points out
(luahost refuses those; nginx follows them) or hold a ".." segment
(luahost refuses every one, whatever it resolves to; nginx resolves
them) or an encoded "/" (400 here; nginx decodes it). A line each for anything else ("DIFF ..."), then "checked N,
served alike S, differ D"."""
import os
import random
import re
import shutil
import subprocess
import sys

import peers

luahost, work, seed, count = sys.argv[1], sys.argv[2], int(sys.argv[3]), \
    int(sys.argv[4])
rng = random.Random(seed)

root = os.path.join(work, "root")
outside = os.path.join(work, "outside")
FILES = {
    "index.html": b"root index\n", "a.txt": b"file a\n",
    "sub/index.html": b"sub index\n", "sub/b.txt": b"file b\n",
    "sub/deep/c.txt": b"file c\n", "sp ace.txt": b"space\n",
    "%41.txt": b"percent\n", "\u00e9.txt": b"e acute\n",
    ".hidden": b"hidden\n",
}
SECRET = b"SECRET outside the root\n"
for name, data in FILES.items():
    path = os.path.join(root, name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
os.makedirs(outside, exist_ok=True)
with open(os.path.join(outside, "secret.txt"), "wb") as f:
    f.write(SECRET)
os.symlink("sub/b.txt", os.path.join(root, "link_in"))
os.symlink("sub", os.path.join(root, "link_dir"))
os.symlink("../outside/secret.txt", os.path.join(root, "link_out"))
os.symlink("../outside", os.path.join(root, "link_outdir"))
os.symlink("../../outside/secret.txt", os.path.join(root, "sub/up"))


nginx, nport = peers.start_nginx(work, """\
    listen 127.0.0.1:%%(port)d;
    root %s;""" % root)
procs = [nginx]
lh = subprocess.Popen([luahost, "spec/support/files_server.lua", root],
                      stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
procs.append(lh)
try:
    lport = int(lh.stdout.readline())

    def ask(port, target):
        got = peers.exchange(port, b"GET " + target + b" HTTP/1.1\r\n"
                             b"Host: h.example\r\nConnection: close\r\n\r\n")
        head, _, body = got.partition(b"\r\n\r\n")
        m = re.match(rb"HTTP/1\.1 (\d{3})", head)
        return (int(m.group(1)) if m else 0), body

    SEGMENTS = [b"a.txt", b"sub", b"b.txt", b"deep", b"c.txt",
                b"sp%20ace.txt", b"%2541.txt", b"%C3%A9.txt", b"%c3%a9.txt",
                b"link_in", b"link_dir", b"link_out", b"link_outdir",
                b"secret.txt", b"up", b".hidden", b"..", b".", b"%2e%2e",
                b"%2E%2e", b".%2e", b"%2e", b"", b"%2f", b"%2F", b"%5c",
                b"..%5c", b"%00", b"%zz", b"%", b"index.html", b"nothere",
                b"A.TXT", b"a.txt.", b"~", b"%61.txt", b"a.txt%00",
                b"%2e%2e%2f", b"...", b"sub%2fb.txt"]
    checked = alike = differ = 0
    REAL = [b"", b"a.txt", b"sub/", b"sub", b"sub/b.txt", b"sub/deep/c.txt",
            b"sub/deep/", b"sp ace.txt", b"%41.txt", "\u00e9.txt".encode(),
            b".hidden", b"link_in", b"link_dir/b.txt", b"link_dir/",
            b"index.html", b"sub/index.html"]

    def encode_some(path):
        """path with some bytes %-encoded (either case), the rest as is
        (a space and bytes outside ASCII always encoded)."""
        out = b""
        for c in path:
            ch = bytes([c])
            if c <= 0x20 or c >= 0x7f or ch in b"%" or (
                    ch != b"/" and rng.random() < 0.15):
                ch = (b"%%%02X" if rng.random() < 0.5 else b"%%%02x") % c
            out += ch
        return out

    for _ in range(count):
        if rng.random() < 0.5:  # a real file, spelled in some way
            segs = encode_some(rng.choice(REAL)).split(b"/")
            for _ in range(rng.randrange(0, 3)):
                i = rng.randrange(0, len(segs) + 1)
                segs.insert(i, rng.choice([b".", b"", b"%2e", b"x/..",
                                           b"sub/.."]))
        else:
            segs = [rng.choice(SEGMENTS) for _ in range(rng.randrange(1, 5))]
        target = b"/" + b"/".join(segs)
        if rng.random() < 0.1:
            target += rng.choice([b"/", b"?q=1", b"?a/../b", b"#f"])
        if b"#" in target:
            continue  # (luahost refuses a fragment: a rule of the parser)
        checked += 1
        ls, lb = ask(lport, target)
        ns, nb = ask(nport, target)
        why = None
        if SECRET in lb:
            why = "luahost served the secret"
        elif ls == 200 and not (ns == 200 and nb == lb):
            why = "luahost serves what nginx does not"
        elif ns == 200 and ls != 200:
            path = target.split(b"?")[0].lower()
            out = re.search(rb"link_out|link_outdir|(^|/)up(/|$)", path)
            dots = re.search(rb"(^|/)(\.|%2e){2}(/|$)", path)
            slash = b"%2f" in path  # an encoded "/": 400 by design
            if not (out or dots or slash):
                why = "nginx serves what luahost does not"
        if why:
            differ += 1
            print("DIFF %r: %s | luahost %d %r | nginx %d %r" % (
                target, why, ls, lb[:40], ns, nb[:40]))
        elif ls == 200:
            alike += 1
    print("checked %d, served alike %d, differ %d" % (checked, alike, differ))
finally:
    peers.stop(procs)
    shutil.rmtree(root, ignore_errors=True)
    shutil.rmtree(outside, ignore_errors=True)
