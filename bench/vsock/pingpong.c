// C reference peer for bench/vsock: the kernel floor that @vmlink/vsock is measured against.
// One process forks an echo server and times ping-pongs against it (or a one-way transfer),
// over AF_VSOCK to CID 1 (vsock_loopback, inside the test guest ONLY) or TCP 127.0.0.1.
//
//   pingpong latency    vsock|tcp ROUND_TRIPS [block|epoll|loop|loop-pkey [TOUCH_KIB]] -> {"p50":us,"p99":us,...}
//   pingpong throughput vsock|tcp BYTES                           -> {"seconds":s,...}
//   pingpong sink[-epoll]   vsock|tcp         prints {"port":P}, accepts ONE connection and
//                                             reads it to EOF -> {"bytes":n,"seconds":s}
//   pingpong source[-epoll] vsock|tcp PORT BYTES  connects to PORT, writes BYTES, closes
//                                             -> {"bytes":n,"seconds":s}
// -epoll: non-blocking fd, epoll_wait() on EAGAIN (how an event loop waits).
// sink and source are the C peer for one Node end (bench/vsock/guest.mjs: Node sending
// to a C reader, Node reading from a C writer), so each direction is measured alone.
//
// How each end waits for its byte:
//   block  two processes, blocking read()
//   epoll  two processes, non-blocking fds, epoll_wait() before each read (as libuv does)
//   loop   ONE thread with both ends in one epoll set: exactly what guest.mjs does with
//          Node (client and echo server share one event loop). Over TCP loopback the
//          write delivers into the peer socket inside the syscall, so this thread never
//          sleeps; over vsock_loopback delivery is deferred to a kernel worker, so it must.
//   loop-pkey  the same after pkey_alloc(), which Node (V8) does at startup: the thread's
//          PKRU register then differs from the kernel threads' default, so every switch to
//          and from the vsock_loopback worker rewrites PKRU, and QEMU TCG flushes its
//          soft TLB on each PKRU write. TCP, which never switches here, is the control.
// Built by bench/vsock/run.mjs with
// `cc -O2` on the host into bench/results/ (the guest has the same glibc).
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/vm_sockets.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define CHUNK (1024 * 1024)

static void die(const char *what) {
  perror(what);
  exit(1);
}

static double now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static int is_vsock;

// A listening socket on an ephemeral port; *port gets the port.
static int listen_any(unsigned *port) {
  int fd;
  if (is_vsock) {
    struct sockaddr_vm addr = {.svm_family = AF_VSOCK, .svm_cid = VMADDR_CID_ANY, .svm_port = VMADDR_PORT_ANY};
    socklen_t len = sizeof addr;
    if ((fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0) die("socket(AF_VSOCK)");
    if (bind(fd, (struct sockaddr *)&addr, sizeof addr) < 0) die("bind");
    if (listen(fd, 1) < 0) die("listen");
    if (getsockname(fd, (struct sockaddr *)&addr, &len) < 0) die("getsockname");
    *port = addr.svm_port;
  } else {
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof addr;
    if ((fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0) die("socket(AF_INET)");
    if (bind(fd, (struct sockaddr *)&addr, sizeof addr) < 0) die("bind");
    if (listen(fd, 1) < 0) die("listen");
    if (getsockname(fd, (struct sockaddr *)&addr, &len) < 0) die("getsockname");
    *port = ntohs(addr.sin_port);
  }
  return fd;
}

// Connects to our own listener. AF_VSOCK only ever dials CID 1 (local loopback).
static int dial(unsigned port) {
  int fd;
  if (is_vsock) {
    struct sockaddr_vm addr = {.svm_family = AF_VSOCK, .svm_cid = VMADDR_CID_LOCAL, .svm_port = port};
    if ((fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0) die("socket(AF_VSOCK)");
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0) die("connect(vsock 1)");
  } else {
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int one = 1;
    if ((fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0) die("socket(AF_INET)");
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0) die("connect(tcp)");
    if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) < 0) die("TCP_NODELAY");
  }
  return fd;
}

static void set_nodelay_if_tcp(int fd) {
  int one = 1;
  if (!is_vsock && setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) < 0) die("TCP_NODELAY");
}

// Waits for readability through epoll (use_epoll), then reads like a non-blocking reader.
struct reader {
  int fd;
  int ep;  // -1: blocking read()
};

static struct reader make_reader(int fd, int use_epoll) {
  struct reader r = {fd, -1};
  if (!use_epoll) return r;
  if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) < 0) die("fcntl");
  if ((r.ep = epoll_create1(EPOLL_CLOEXEC)) < 0) die("epoll_create1");
  struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};
  if (epoll_ctl(r.ep, EPOLL_CTL_ADD, fd, &ev) < 0) die("epoll_ctl");
  return r;
}

static ssize_t read_some(struct reader *r, void *buf, size_t len) {
  for (;;) {
    ssize_t n = read(r->fd, buf, len);
    if (n >= 0) return n;
    if (errno == EINTR) continue;
    if (errno != EAGAIN || r->ep < 0) return -1;
    struct epoll_event ev;
    if (epoll_wait(r->ep, &ev, 1, -1) < 0 && errno != EINTR) return -1;
  }
}

static void write_all(int fd, const char *buf, size_t len) {
  while (len > 0) {
    ssize_t n = write(fd, buf, len);
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;  // 1-byte echoes never fill a buffer
      die("write");
    }
    buf += n;
    len -= (size_t)n;
  }
}

// Forks the peer: it accepts one connection and echoes (or drains) until EOF.
static pid_t serve(int listener, int echo, int use_epoll) {
  pid_t pid = fork();
  if (pid < 0) die("fork");
  if (pid > 0) return pid;
  int fd = accept(listener, NULL, NULL);
  if (fd < 0) die("accept");
  set_nodelay_if_tcp(fd);
  struct reader r = make_reader(fd, use_epoll);
  static char buf[CHUNK];
  ssize_t n;
  while ((n = read_some(&r, buf, sizeof buf)) > 0) {
    if (echo) write_all(fd, buf, (size_t)n);
  }
  _exit(n < 0 ? 1 : 0);
}

static int compare(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static int latency(long round_trips, int use_epoll) {
  unsigned port;
  int listener = listen_any(&port);
  pid_t peer = serve(listener, 1, use_epoll);
  close(listener);
  int fd = dial(port);
  struct reader r = make_reader(fd, use_epoll);
  double *samples = malloc(sizeof(double) * (size_t)round_trips);
  if (samples == NULL) die("malloc");
  char byte = 1;
  for (long i = 0; i < round_trips; i++) {
    double started = now_us();
    write_all(fd, &byte, 1);
    if (read_some(&r, &byte, 1) != 1) die("read");
    samples[i] = now_us() - started;
  }
  close(fd);
  int status;
  waitpid(peer, &status, 0);
  qsort(samples, (size_t)round_trips, sizeof(double), compare);
  // Same quantile rule as guest.mjs: sorted[floor(q * n)].
  printf("{\"transport\":\"%s\",\"wait\":\"%s\",\"roundTrips\":%ld,\"p50\":%.1f,\"p99\":%.1f}\n", is_vsock ? "vsock" : "tcp",
         use_epoll ? "epoll" : "block", round_trips, samples[round_trips / 2], samples[round_trips * 99 / 100]);
  free(samples);
  return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 1;
}

// Both ends in this thread, one epoll set, like a single Node event loop.
// touch_kib > 0: each round trip also reads and writes one byte in every page of a
// touch_kib working set, standing in for the memory an event loop like Node's touches
// per wake-up (JIT code, heap, stacks). Under QEMU TCG a context switch flushes the soft
// TLB, so that memory is re-walked on every switch; this row shows what that costs.
static int latency_one_loop(long round_trips, long touch_kib) {
  unsigned port;
  int listener = listen_any(&port);
  int client = dial(port);
  int server = accept(listener, NULL, NULL);
  if (server < 0) die("accept");
  close(listener);
  set_nodelay_if_tcp(server);
  struct reader client_reader = make_reader(client, 1), server_reader = make_reader(server, 1);
  close(client_reader.ep);
  close(server_reader.ep);
  int ep = epoll_create1(EPOLL_CLOEXEC);
  if (ep < 0) die("epoll_create1");
  struct epoll_event ev = {.events = EPOLLIN, .data.fd = client};
  if (epoll_ctl(ep, EPOLL_CTL_ADD, client, &ev) < 0) die("epoll_ctl");
  ev.data.fd = server;
  if (epoll_ctl(ep, EPOLL_CTL_ADD, server, &ev) < 0) die("epoll_ctl");
  double *samples = malloc(sizeof(double) * (size_t)round_trips);
  if (samples == NULL) die("malloc");
  char byte = 1, buf[64];
  size_t touch_bytes = (size_t)touch_kib * 1024;
  volatile char *touch = touch_bytes > 0 ? calloc(touch_bytes, 1) : NULL;
  if (touch_bytes > 0 && touch == NULL) die("calloc");
  for (long i = 0; i < round_trips; i++) {
    double started = now_us();
    for (size_t offset = 0; offset < touch_bytes; offset += 4096) touch[offset]++;
    write_all(client, &byte, 1);
    for (int answered = 0; !answered;) {
      struct epoll_event ready[2];
      int n = epoll_wait(ep, ready, 2, -1);
      if (n < 0 && errno != EINTR) die("epoll_wait");
      for (int k = 0; k < n; k++) {
        ssize_t got = read(ready[k].data.fd, buf, sizeof buf);
        if (got < 0 && errno == EAGAIN) continue;
        if (got <= 0) die("read");
        if (ready[k].data.fd == server) {
          for (size_t offset = 0; offset < touch_bytes; offset += 4096) touch[offset]++;
          write_all(server, buf, (size_t)got);
        }
        else answered = 1;
      }
    }
    samples[i] = now_us() - started;
  }
  close(client);
  close(server);
  close(ep);
  qsort(samples, (size_t)round_trips, sizeof(double), compare);
  printf("{\"transport\":\"%s\",\"wait\":\"loop\",\"touchKiB\":%ld,\"roundTrips\":%ld,\"p50\":%.1f,\"p99\":%.1f}\n",
         is_vsock ? "vsock" : "tcp", touch_kib, round_trips, samples[round_trips / 2], samples[round_trips * 99 / 100]);
  free(samples);
  free((char *)touch);
  return 0;
}

static int throughput(long total) {
  unsigned port;
  int listener = listen_any(&port);
  pid_t peer = serve(listener, 0, 0);
  close(listener);
  static char buf[CHUNK];
  memset(buf, 0x5a, sizeof buf);
  double started = now_us();
  int fd = dial(port);
  for (long sent = 0; sent < total; sent += CHUNK) write_all(fd, buf, (size_t)(total - sent < CHUNK ? total - sent : CHUNK));
  close(fd);
  int status;
  waitpid(peer, &status, 0);  // the peer exits at EOF: every byte has been read
  printf("{\"transport\":\"%s\",\"bytes\":%ld,\"seconds\":%.6f}\n", is_vsock ? "vsock" : "tcp", total, (now_us() - started) / 1e6);
  return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 1;
}

// User + system CPU this process used so far.
static double cpu_seconds(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec + (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

// One end of a one-way transfer whose other end is someone else (a Node process).
static int sink_mode(int use_epoll) {
  unsigned port;
  int listener = listen_any(&port);
  printf("{\"port\":%u}\n", port);
  fflush(stdout);
  int fd = accept(listener, NULL, NULL);
  if (fd < 0) die("accept");
  close(listener);
  double started = now_us();
  static char buf[CHUNK];
  long total = 0;
  ssize_t n;
  struct reader r = make_reader(fd, use_epoll);
  while ((n = read_some(&r, buf, sizeof buf)) != 0) {
    if (n < 0) die("read");
    total += n;
  }
  close(fd);
  printf("{\"bytes\":%ld,\"seconds\":%.6f,\"cpuSeconds\":%.6f}\n", total, (now_us() - started) / 1e6, cpu_seconds());
  return 0;
}

// use_epoll: non-blocking writes, epoll_wait(EPOLLOUT) on EAGAIN, as an event loop does.
static int source_mode(unsigned port, long total, int use_epoll) {
  static char buf[CHUNK];
  memset(buf, 0x5a, sizeof buf);
  double started = now_us();
  int fd = dial(port);
  int ep = -1;
  if (use_epoll) {
    if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) < 0) die("fcntl");
    if ((ep = epoll_create1(EPOLL_CLOEXEC)) < 0) die("epoll_create1");
    struct epoll_event ev = {.events = EPOLLOUT, .data.fd = fd};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0) die("epoll_ctl");
  }
  for (long sent = 0; sent < total;) {
    size_t want = (size_t)(total - sent < CHUNK ? total - sent : CHUNK);
    ssize_t n = write(fd, buf, want);
    if (n > 0) {
      sent += n;
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN && ep >= 0) {
      struct epoll_event ev;
      if (epoll_wait(ep, &ev, 1, -1) < 0 && errno != EINTR) die("epoll_wait");
      continue;
    }
    die("write");
  }
  close(fd);
  printf("{\"bytes\":%ld,\"seconds\":%.6f,\"cpuSeconds\":%.6f}\n", total, (now_us() - started) / 1e6, cpu_seconds());
  return 0;
}

int main(int argc, char **argv) {
  if (argc >= 3 && (strncmp(argv[1], "sink", 4) == 0 || strncmp(argv[1], "source", 6) == 0)) {
    signal(SIGPIPE, SIG_IGN);
    is_vsock = strcmp(argv[2], "vsock") == 0;
    int use_epoll = strstr(argv[1], "-epoll") != NULL;
    if (strncmp(argv[1], "sink", 4) == 0) return sink_mode(use_epoll);
    if (argc < 5) {
      fprintf(stderr, "usage: %s source[-epoll] vsock|tcp PORT BYTES\n", argv[0]);
      return 2;
    }
    return source_mode((unsigned)strtoul(argv[3], NULL, 10), strtol(argv[4], NULL, 10), use_epoll);
  }
  if (argc < 4 || (strcmp(argv[2], "vsock") != 0 && strcmp(argv[2], "tcp") != 0)) {
    fprintf(stderr, "usage: %s latency vsock|tcp ROUND_TRIPS [block|epoll|loop|loop-pkey [TOUCH_KIB]]\n       %s throughput vsock|tcp BYTES\n", argv[0], argv[0]);
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  is_vsock = strcmp(argv[2], "vsock") == 0;
  long count = strtol(argv[3], NULL, 10);
  if (count <= 0) {
    fprintf(stderr, "count must be > 0\n");
    return 2;
  }
  const char *wait = argc > 4 ? argv[4] : "block";
  if (strcmp(wait, "loop-pkey") == 0) {
    // Like Node 20 (V8): one key, write-disabled. PKRU becomes 0x55555558 (the default is
    // 0x55555554); no page uses the key, so only the register value changes.
    if (pkey_alloc(0, PKEY_DISABLE_WRITE) < 0) die("pkey_alloc");
    wait = "loop";
  }
  if (strcmp(argv[1], "latency") == 0 && strcmp(wait, "loop") == 0) return latency_one_loop(count, argc > 5 ? strtol(argv[5], NULL, 10) : 0);
  if (strcmp(argv[1], "latency") == 0) return latency(count, strcmp(wait, "epoll") == 0);
  if (strcmp(argv[1], "throughput") == 0) return throughput(count);
  fprintf(stderr, "unknown mode %s\n", argv[1]);
  return 2;
}
