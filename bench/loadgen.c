/*
** loadgen.c: TCP echo load generator for make bench (libuv).
**
**   loadgen -p PORT [-h HOST] -c CONNS -m SIZE -w INFLIGHT
**           [-d SECONDS] [-W WARMUP_SECONDS] [-P SERVER_PID]
**     N connections, each keeping W messages of M bytes in flight, for D
**     seconds after a warm-up. Every echoed byte is checked against what
**     was sent; a mismatch, an early EOF, a socket error or a server that
**     stops answering ends the run with exit status 1. On success prints
**     one line of key=value pairs: msgs, msgs_per_s, mb_per_s, p50_us,
**     p99_us, and with -P the server's CPU time over the measured window
**     (utime+stime of /proc/PID/stat) as cpu_us_per_msg and srv_cpu_pct.
**     -P PID,PID,... sums the CPU of several processes (a supervisor and
**     its workers); srv_cpu_pct may then exceed 100.
**
**   loadgen -p PORT -i CONNS -P SERVER_PID
**     Memory mode: opens CONNS connections, makes one small echo round
**     trip on each (so each server-side handler is back waiting in a read),
**     lets the server settle, and prints the growth of the server's VmRSS
**     divided by CONNS as bytes_per_conn.
**
**   loadgen -f
**     Prints a free TCP port on 127.0.0.1 (for servers that cannot report
**     the port they bound).
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
#include <stdarg.h>
#include <signal.h>
#include <unistd.h>
#include <sys/resource.h>
#include <uv.h>

#define PATLEN 65521               /* prime, so the streams of two
                                      connections never line up */
#define MAXMSG (1024 * 1024)
#define READ_BUF (256 * 1024)
#define SUBBITS 7                  /* histogram: 128 sub-buckets per octave */
#define SUB (1u << SUBBITS)
#define NBUCKETS (64 * SUB)
#define MAX_CONNECTING 256         /* connects in flight at once */

typedef struct {
  uv_tcp_t tcp;
  uv_connect_t creq;
  int id;
  uint64_t sent;                   /* messages sent */
  uint64_t done;                   /* messages fully echoed */
  uint64_t rbytes;                 /* bytes received and checked */
  uint64_t *stamps;                /* send time of each message in flight */
} conn_t;

typedef struct {
  uv_write_t req;
  uv_buf_t buf;
} wreq_t;

enum { CONNECTING, WARMUP, MEASURE, DRAIN, IDLE_SETTLE, DONE };

static uv_loop_t *loop;
static unsigned char *pattern;     /* PATLEN + MAXMSG + READ_BUF bytes */
static char readbuf[READ_BUF];
static conn_t *conns;
static int nconns, msgsize = 64, inflight = 1, idle_mode;
static double duration = 4, warmup = 1;
static int server_pid;              /* the first of server_pids */
static int server_pids[16], nserver_pids;
static const char *host = "127.0.0.1";
static int port;
static int state = CONNECTING;
static int nconnected, nstarted, nidle_ready, nbusy;
static uv_timer_t timer;
static uint64_t hist[NBUCKETS];
static uint64_t t0, t1, msgs0, msgs1, bytes0, bytes1, total_msgs, total_bytes;
static double cpu0, cpu1, cli0, cli1, busy0, busy1;
static long rss0;

static void fail(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "loadgen: FAIL: ");
  vfprintf(stderr, fmt, ap);
  fprintf(stderr, "\n");
  va_end(ap);
  exit(1);
}

/* {======================================================================
** Latency histogram (log-linear, < 1% error)
** ======================================================================= */

static unsigned bucket(uint64_t v) {
  if (v < SUB) return (unsigned)v;
  int shift = 63 - __builtin_clzll(v) - SUBBITS;
  return (unsigned)(shift + 1) * SUB + (unsigned)((v >> shift) - SUB);
}

static double bucket_value(unsigned i) {
  if (i < SUB) return i;
  unsigned shift = i / SUB - 1;
  double lo = (double)((uint64_t)(i % SUB + SUB) << shift);
  return lo + (double)((uint64_t)1 << shift) / 2;  /* middle of the bucket */
}

static double percentile(double q) {
  uint64_t n = 0, seen = 0;
  for (unsigned i = 0; i < NBUCKETS; i++) n += hist[i];
  if (n == 0) return 0;
  uint64_t rank = (uint64_t)(q * (double)n);
  if (rank >= n) rank = n - 1;
  for (unsigned i = 0; i < NBUCKETS; i++) {
    seen += hist[i];
    if (seen > rank) return bucket_value(i);
  }
  return 0;
}

/* }====================================================================== */

/* {======================================================================
** The server process, seen through /proc
** ======================================================================= */

/* utime + stime of the whole thread group, in seconds */
static double proc_cpu(int pid) {
  char path[64], buf[1024];
  snprintf(path, sizeof path, "/proc/%d/stat", pid);
  FILE *f = fopen(path, "r");
  if (f == NULL) fail("cannot read %s (server gone?)", path);
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = '\0';
  char *p = strrchr(buf, ')');     /* the name may hold spaces */
  unsigned long ut, st;
  if (p == NULL
      || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu",
                &ut, &st) != 2)
    fail("cannot parse %s", path);
  return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* the CPU time of every server process (-P PID,PID,...: a supervisor and
** its workers) */
static double servers_cpu(void) {
  double t = 0;
  for (int i = 0; i < nserver_pids; i++) t += proc_cpu(server_pids[i]);
  return t;
}

static long proc_rss_kb(int pid) {
  char path[64], line[256];
  long kb = -1;
  snprintf(path, sizeof path, "/proc/%d/status", pid);
  FILE *f = fopen(path, "r");
  if (f == NULL) fail("cannot read %s (server gone?)", path);
  while (fgets(line, sizeof line, f))
    if (sscanf(line, "VmRSS: %ld kB", &kb) == 1) break;
  fclose(f);
  if (kb < 0) fail("no VmRSS in %s", path);
  return kb;
}

/* busy time of the whole machine (all CPUs, steal included: time the
** hypervisor gave to others), in seconds */
static double machine_busy(void) {
  unsigned long long v[8] = {0};
  FILE *f = fopen("/proc/stat", "r");
  if (f == NULL) return 0;
  int n = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu",
                 &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7]);
  fclose(f);
  if (n != 8) return 0;
  /* user nice system idle iowait irq softirq steal: all but idle, iowait */
  return (double)(v[0] + v[1] + v[2] + v[5] + v[6] + v[7])
       / (double)sysconf(_SC_CLK_TCK);
}

static double self_cpu(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6
       + (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

/* }====================================================================== */

/* byte k of connection c's stream is pattern[(k + 7919 * c) % PATLEN] */
static const unsigned char *stream_at(conn_t *c, uint64_t k) {
  return pattern + (k + 7919u * (uint64_t)c->id) % PATLEN;
}

static void write_cb(uv_write_t *req, int status) {
  free(req);
  if (status < 0) fail("write: %s", uv_strerror(status));
}

/* sends the next n messages of c's stream in one write: they are contiguous
** in the pattern */
static void send_msgs(conn_t *c, int n, uint64_t now) {
  size_t len = (size_t)n * (size_t)msgsize;
  uv_buf_t b = uv_buf_init((char *)stream_at(c, c->sent * msgsize),
                           (unsigned)len);
  for (int i = 0; i < n; i++) c->stamps[(c->sent + i) % inflight] = now;
  c->sent += (uint64_t)n;
  int w = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
  if (w >= 0 && (size_t)w == len) return;
  if (w < 0 && w != UV_EAGAIN) fail("write: %s", uv_strerror(w));
  if (w < 0) w = 0;
  /* the pattern is never written to, so the rest is queued in place */
  wreq_t *q = malloc(sizeof *q);
  if (q == NULL) fail("out of memory");
  q->buf = uv_buf_init(b.base + w, b.len - (unsigned)w);
  int r = uv_write(&q->req, (uv_stream_t *)&c->tcp, &q->buf, 1, write_cb);
  if (r < 0) fail("write: %s", uv_strerror(r));
}

static void finish(void);
static void phase_cb(uv_timer_t *t);

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  (void)h; (void)suggested;
  buf->base = readbuf;
  buf->len = sizeof readbuf;
}

static void read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  conn_t *c = (conn_t *)s;
  if (nread == UV_EOF)
    fail("connection %d: early EOF after %llu bytes", c->id,
         (unsigned long long)c->rbytes);
  if (nread < 0)
    fail("connection %d: read: %s", c->id, uv_strerror((int)nread));
  if (nread == 0) return;
  uint64_t expected = c->sent * (uint64_t)msgsize - c->rbytes;
  if ((uint64_t)nread > expected)
    fail("connection %d: %lld bytes more than were sent", c->id,
         (long long)((uint64_t)nread - expected));
  /* pattern holds READ_BUF bytes past PATLEN: one compare suffices */
  if (memcmp(buf->base, stream_at(c, c->rbytes), (size_t)nread) != 0)
    fail("connection %d: echoed bytes differ from those sent (at byte %llu)",
         c->id, (unsigned long long)c->rbytes);
  c->rbytes += (uint64_t)nread;
  total_bytes += (uint64_t)nread;
  uint64_t now = 0;
  int nnew = 0;
  while (c->rbytes >= (c->done + 1) * (uint64_t)msgsize) {
    if (now == 0) now = uv_hrtime();
    uint64_t lat = now - c->stamps[c->done % inflight];
    c->done++;
    total_msgs++;
    if (state == MEASURE) hist[bucket(lat)]++;
    if (idle_mode) {
      nidle_ready++;
      if (nidle_ready == nconns) finish();
      continue;
    }
    if (state == WARMUP || state == MEASURE) nnew++;
    else if (state == DRAIN && c->done == c->sent && --nbusy == 0) finish();
  }
  if (nnew > 0) send_msgs(c, nnew, now);  /* refill what was answered */
}

static void start_conn(int i);

static void connect_cb(uv_connect_t *req, int status) {
  conn_t *c = req->data;
  if (status < 0) fail("connect: %s", uv_strerror(status));
  uv_tcp_nodelay(&c->tcp, 1);
  int r = uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, read_cb);
  if (r < 0) fail("read_start: %s", uv_strerror(r));
  nconnected++;
  if (idle_mode) {
    send_msgs(c, 1, uv_hrtime());
    if (nstarted < nconns) start_conn(nstarted++);
    return;
  }
  if (nconnected < nconns) {
    if (nstarted < nconns) start_conn(nstarted++);
    return;
  }
  /* all connected: warm up, then measure */
  state = WARMUP;
  uint64_t now = uv_hrtime();
  for (int i = 0; i < nconns; i++) send_msgs(&conns[i], inflight, now);
  uv_timer_start(&timer, phase_cb, (uint64_t)(warmup * 1000), 0);
}

static void start_conn(int i) {
  conn_t *c = &conns[i];
  struct sockaddr_storage ss;
  if (uv_ip4_addr(host, port, (struct sockaddr_in *)&ss) < 0
      && uv_ip6_addr(host, port, (struct sockaddr_in6 *)&ss) < 0)
    fail("bad address %s", host);
  c->id = i;
  c->stamps = calloc((size_t)inflight, sizeof *c->stamps);
  if (c->stamps == NULL) fail("out of memory");
  uv_tcp_init(loop, &c->tcp);
  c->creq.data = c;
  /* Idle connections to IPv4 loopback come from many addresses, 100 per
  ** 127.0.x.y, as many idle clients would: a server's per-address limit
  ** (net's max_per_address, 256 by default) is not what is measured. */
  if (idle_mode && strncmp(host, "127.", 4) == 0) {
    struct sockaddr_in src;
    char ip[32];
    int n = i / 100;
    snprintf(ip, sizeof ip, "127.0.%d.%d", 1 + n / 250, 1 + n % 250);
    uv_ip4_addr(ip, 0, &src);
    int b = uv_tcp_bind(&c->tcp, (struct sockaddr *)&src, 0);
    if (b < 0) fail("bind %s: %s", ip, uv_strerror(b));
  }
  int r = uv_tcp_connect(&c->creq, &c->tcp, (struct sockaddr *)&ss,
                         connect_cb);
  if (r < 0) fail("connect: %s", uv_strerror(r));
}

static void stall_cb(uv_timer_t *t) {
  (void)t;
  if (state == CONNECTING)
    fail("only %d of %d connections established in 20 s", nconnected, nconns);
  fail("server stopped answering: %d connections still wait for echoes",
       idle_mode ? nconns - nidle_ready : nbusy);
}

static void phase_cb(uv_timer_t *t) {
  if (state == WARMUP) {
    state = MEASURE;
    t0 = uv_hrtime();
    msgs0 = total_msgs;
    bytes0 = total_bytes;
    if (server_pid) cpu0 = servers_cpu();
    cli0 = self_cpu();
    busy0 = machine_busy();
    uv_timer_start(t, phase_cb, (uint64_t)(duration * 1000), 0);
  } else if (state == MEASURE) {
    t1 = uv_hrtime();
    msgs1 = total_msgs;
    bytes1 = total_bytes;
    if (server_pid) cpu1 = servers_cpu();
    cli1 = self_cpu();
    busy1 = machine_busy();
    state = DRAIN;                 /* stop sending, check what is in flight */
    nbusy = 0;
    for (int i = 0; i < nconns; i++)
      if (conns[i].done != conns[i].sent) nbusy++;
    if (nbusy == 0) finish();
    else uv_timer_start(t, stall_cb, 10000, 0);
  } else if (state == IDLE_SETTLE) {
    long rss1 = proc_rss_kb(server_pid);
    printf("conns=%d rss_before_kb=%ld rss_after_kb=%ld bytes_per_conn=%.0f\n",
           nconns, rss0, rss1, (double)(rss1 - rss0) * 1024.0 / nconns);
    fflush(stdout);
    exit(0);  /* the kernel closes the sockets: no need to wait for it */
  }
}

static void finish(void) {
  if (idle_mode) {
    state = IDLE_SETTLE;
    uv_timer_start(&timer, phase_cb, 1000, 0);  /* let the server settle */
    return;
  }
  double secs = (double)(t1 - t0) / 1e9;
  uint64_t msgs = msgs1 - msgs0;
  if (msgs == 0) fail("no message echoed in the measured window");
  printf("msgs=%llu secs=%.3f msgs_per_s=%.0f mb_per_s=%.2f p50_us=%.1f "
         "p99_us=%.1f cli_cpu_pct=%.0f",
         (unsigned long long)msgs, secs, (double)msgs / secs,
         (double)(bytes1 - bytes0) / secs / 1e6,
         percentile(0.50) / 1e3, percentile(0.99) / 1e3,
         (cli1 - cli0) / secs * 100);
  if (server_pid) {
    /* what else ran on the machine meanwhile: if much, the numbers are
    ** noisy */
    double other = (busy1 - busy0) - (cli1 - cli0) - (cpu1 - cpu0);
    printf(" srv_cpu_pct=%.0f cpu_us_per_msg=%.3f other_cpu_pct=%.0f",
           (cpu1 - cpu0) / secs * 100, (cpu1 - cpu0) * 1e6 / (double)msgs,
           other > 0 ? other / secs * 100 : 0.0);
  }
  printf("\n");
  fflush(stdout);
  exit(0);
}

static int free_port(void) {
  uv_tcp_t t;
  struct sockaddr_storage ss;
  int len = sizeof ss;
  uv_ip4_addr("127.0.0.1", 0, (struct sockaddr_in *)&ss);
  uv_tcp_init(loop, &t);
  int r = uv_tcp_bind(&t, (struct sockaddr *)&ss, 0);
  if (r < 0) fail("bind: %s", uv_strerror(r));
  uv_tcp_getsockname(&t, (struct sockaddr *)&ss, &len);
  printf("%d\n", ntohs(((struct sockaddr_in *)&ss)->sin_port));
  return 0;
}

static void usage(void) {
  fprintf(stderr,
    "usage: loadgen -p PORT [-h HOST] -c CONNS -m SIZE -w INFLIGHT\n"
    "               [-d SECONDS] [-W WARMUP] [-P SERVER_PID]\n"
    "       loadgen -p PORT [-h HOST] -i CONNS -P SERVER_PID\n"
    "       loadgen -f\n");
  exit(2);
}

int main(int argc, char **argv) {
  int opt;
  loop = uv_default_loop();
  signal(SIGPIPE, SIG_IGN);
  while ((opt = getopt(argc, argv, "p:h:c:m:w:d:W:P:i:f")) != -1) {
    switch (opt) {
      case 'p': port = atoi(optarg); break;
      case 'h': host = optarg; break;
      case 'c': nconns = atoi(optarg); break;
      case 'm': msgsize = atoi(optarg); break;
      case 'w': inflight = atoi(optarg); break;
      case 'd': duration = atof(optarg); break;
      case 'W': warmup = atof(optarg); break;
      case 'P':                    /* PID or PID,PID,... */
        for (char *q = optarg; *q != '\0' && nserver_pids < 16; ) {
          server_pids[nserver_pids++] = (int)strtol(q, &q, 10);
          if (*q == ',') q++;
          else if (*q != '\0') usage();
        }
        server_pid = server_pids[0];
        break;
      case 'i': nconns = atoi(optarg); idle_mode = 1; msgsize = 16;
                inflight = 1; break;
      case 'f': return free_port();
      default: usage();
    }
  }
  /* a write sends up to W messages at once, straight from the pattern */
  if (port <= 0 || nconns <= 0 || msgsize <= 0 || inflight <= 0
      || (long long)msgsize * inflight > MAXMSG || duration <= 0 || warmup < 0
      || (idle_mode && server_pid <= 0))
    usage();
  pattern = malloc(PATLEN + MAXMSG + READ_BUF);
  conns = calloc((size_t)nconns, sizeof *conns);
  if (pattern == NULL || conns == NULL) fail("out of memory");
  uint32_t x = 2463534242u;        /* xorshift: any non-trivial bytes do */
  for (int i = 0; i < PATLEN; i++) {
    x ^= x << 13; x ^= x >> 17; x ^= x << 5;
    pattern[i] = (unsigned char)x;
  }
  for (int i = PATLEN; i < PATLEN + MAXMSG + READ_BUF; i++)
    pattern[i] = pattern[i - PATLEN];
  if (idle_mode) rss0 = proc_rss_kb(server_pid);
  uv_timer_init(loop, &timer);
  uv_timer_start(&timer, stall_cb, 20000, 0);  /* connect phase limit */
  while (nstarted < nconns && nstarted < MAX_CONNECTING)
    start_conn(nstarted++);
  uv_run(loop, UV_RUN_DEFAULT);
  fail("event loop ended early");
  return 1;
}
