# The server of socket_spec's receive comparison: writes PORT to argv[1],
# then for each line of argv[2] (a case's bytes, hex) accepts a connection
# and sends those bytes in random small pieces with short pauses (seeded:
# the same pieces for both clients), then ends its output. Exits after
# the last case, or after 60 s without a connection.
import random, socket, sys, time

port_file, data_file = sys.argv[1], sys.argv[2]
datas = [bytes.fromhex(line.strip()) for line in open(data_file)]
srv = socket.socket()
srv.bind(("127.0.0.1", 0))
srv.listen(5)
srv.settimeout(60)
with open(port_file + ".tmp", "w") as f:
    f.write(str(srv.getsockname()[1]))
import os
os.rename(port_file + ".tmp", port_file)
rng = random.Random(int(sys.argv[3]) if len(sys.argv) > 3 else 1)
for data in datas:
    conn, _ = srv.accept()
    conn.settimeout(10)
    i = 0
    try:
        while i < len(data):
            k = rng.randint(1, 5)
            conn.sendall(data[i:i + k])
            i += k
            if rng.random() < 0.3:
                time.sleep(0.002)
        conn.shutdown(socket.SHUT_WR)
        while conn.recv(4096):  # until the client closes
            pass
    except OSError:  # the client closed first (it read what it wanted)
        pass
    conn.close()
