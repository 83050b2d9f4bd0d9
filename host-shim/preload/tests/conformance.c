/* Conformance program for libtoe_preload: exercises every interposed call
 * and prints what it observed. The output must be identical on the kernel
 * (127.0.0.1) and under flextoe-run (the service's IP): nothing printed
 * depends on addresses, ports or timing. Where a step needs data to have
 * arrived, it waits for that condition (wait_bytes, wait_for), never for a
 * fixed time.
 *
 * usage: conformance IP PORT   (uses PORT, PORT+1, PORT+2; PORT+3 must be closed)
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/select.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <unistd.h>

static const char *ip;
static int port;

#define CHECK(c) do { if (!(c)) { printf("FAILED %s at line %d (errno %s)\n", #c, __LINE__, strerrorname_np(errno) ? strerrorname_np(errno) : "?"); fflush(stdout); exit(1); } } while (0)

/* Prints a call's result and errno (read after the call). */
#define SHOW(fmt, call) do { errno = 0; long r_ = (long)(call); int e_ = errno; printf(fmt, r_, ename(e_)); } while (0)

static const char *ename(int e) { if (e == 0) return "0"; const char *n = strerrorname_np(e); return n ? n : "?"; }

static struct sockaddr_in addr_of(int p) {
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons(p);
    inet_pton(AF_INET, ip, &a.sin_addr);
    return a;
}

static int listener(int p) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(fd >= 0);
    int one = 1;
    CHECK(setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) == 0);
    struct sockaddr_in a = addr_of(p);
    CHECK(bind(fd, (struct sockaddr *)&a, sizeof a) == 0);
    CHECK(listen(fd, 16) == 0);
    return fd;
}

static int connect_to(int p) {
    int fd = socket(AF_INET, SOCK_STREAM, IPPROTO_TCP);
    CHECK(fd >= 0);
    struct sockaddr_in a = addr_of(p);
    CHECK(connect(fd, (struct sockaddr *)&a, sizeof a) == 0);
    return fd;
}

/* Waits (poll) until fd has `ev`; returns revents. */
static int wait_for(int fd, short ev, int ms) {
    struct pollfd p = {.fd = fd, .events = ev};
    int n = poll(&p, 1, ms);
    CHECK(n >= 0);
    return n ? p.revents : 0;
}

/* Waits until at least `n` bytes are readable on `fd` (FIONREAD): a
 * message written in one call may arrive in pieces. */
static void wait_bytes(int fd, int n) {
    for (int waited = 0; waited < 5000; waited++) {
        int avail = 0;
        CHECK(ioctl(fd, FIONREAD, &avail) == 0);
        if (avail >= n) return;
        poll(NULL, 0, 1);
    }
    CHECK(!"bytes arrived within 5 s");
}

static void read_exact(int fd, char *buf, size_t n) {
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, buf + got, n - got);
        if (r < 0 && errno == EAGAIN) { wait_for(fd, POLLIN, 5000); continue; }
        CHECK(r > 0);
        got += r;
    }
}

struct acc { int lfd; int cfd; struct sockaddr_in peer; };
static void *acceptor(void *arg) {
    struct acc *a = arg;
    socklen_t l = sizeof a->peer;
    a->cfd = accept(a->lfd, (struct sockaddr *)&a->peer, &l);
    return NULL;
}

static volatile sig_atomic_t alarms;
static void on_alarm(int s) { (void)s; alarms++; }

int main(int argc, char **argv) {
    if (argc != 3) { fprintf(stderr, "usage: conformance IP PORT\n"); return 2; }
    ip = argv[1];
    port = atoi(argv[2]);
    setvbuf(stdout, NULL, _IOLBF, 0);
    signal(SIGPIPE, SIG_IGN);

    /* --- listen, accept on another thread, addresses --- */
    int lfd = listener(port);
    struct sockaddr_in sa; socklen_t sl = sizeof sa;
    CHECK(getsockname(lfd, (struct sockaddr *)&sa, &sl) == 0);
    printf("listen: family=%d port_ok=%d len=%u\n", sa.sin_family, ntohs(sa.sin_port) == port, sl);
    int v = 0; socklen_t vl = sizeof v;
    CHECK(getsockopt(lfd, SOL_SOCKET, SO_ACCEPTCONN, &v, &vl) == 0);
    printf("listen: SO_ACCEPTCONN=%d\n", v);
    struct acc acc = {.lfd = lfd, .cfd = -1};
    pthread_t th;
    CHECK(pthread_create(&th, NULL, acceptor, &acc) == 0);
    /* Lets the acceptor block in accept() first, the case under test; if it
     * has not yet, accept() finds the connection queued and the output is
     * the same. */
    usleep(50000);
    int c = connect_to(port);
    CHECK(pthread_join(th, NULL) == 0);
    int s = acc.cfd;
    printf("accept on another thread: ok=%d\n", s >= 0);
    struct sockaddr_in cl, cp, sp; socklen_t l1 = sizeof cl, l2 = sizeof cp, l3 = sizeof sp;
    CHECK(getsockname(c, (struct sockaddr *)&cl, &l1) == 0);
    CHECK(getpeername(c, (struct sockaddr *)&cp, &l2) == 0);
    CHECK(getpeername(s, (struct sockaddr *)&sp, &l3) == 0);
    printf("addresses: client_peer_port_ok=%d client_local_ip_is_server_ip=%d accepted_peer_matches=%d\n",
           ntohs(cp.sin_port) == port, cl.sin_addr.s_addr == addr_of(port).sin_addr.s_addr,
           sp.sin_port == cl.sin_port && sp.sin_addr.s_addr == cl.sin_addr.s_addr);
    struct sockaddr_in raw; socklen_t rl = sizeof raw;
    CHECK(syscall(SYS_getsockname, c, &raw, &rl) == 0);
    printf("syscall(SYS_getsockname): same=%d\n", raw.sin_port == cl.sin_port);
    int fresh = socket(AF_INET, SOCK_STREAM, 0);
    errno = 0;
    SHOW("getpeername unconnected: %ld %s\n", getpeername(fresh, (struct sockaddr *)&raw, &rl));
    close(fresh);

    /* --- options --- */
    int one = 1;
    CHECK(setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) == 0);
    v = 0; vl = sizeof v;
    CHECK(getsockopt(c, IPPROTO_TCP, TCP_NODELAY, &v, &vl) == 0);
    printf("TCP_NODELAY: %d\n", v != 0);
    vl = sizeof v;
    CHECK(getsockopt(c, SOL_SOCKET, SO_TYPE, &v, &vl) == 0);
    printf("SO_TYPE: %d\n", v);
    CHECK(setsockopt(c, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one) == 0);
    int idle = 30;
    CHECK(setsockopt(c, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle) == 0);
    struct linger lg = {.l_onoff = 0, .l_linger = 0};
    CHECK(setsockopt(c, SOL_SOCKET, SO_LINGER, &lg, sizeof lg) == 0);
    errno = 0;
    SHOW("unknown option: %ld %s\n", setsockopt(c, SOL_SOCKET, 12345, &one, sizeof one));
    vl = sizeof v;
    CHECK(getsockopt(c, SOL_SOCKET, SO_ERROR, &v, &vl) == 0);
    printf("SO_ERROR connected: %d\n", v);

    /* --- data, FIONREAD, peek, readv/writev, sendmsg/recvmsg --- */
    CHECK(write(c, "hello", 5) == 5);
    wait_bytes(s, 5);
    int avail = -1;
    CHECK(ioctl(s, FIONREAD, &avail) == 0);
    printf("FIONREAD: %d\n", avail);
    char buf[256];
    ssize_t n = recv(s, buf, 3, MSG_PEEK);
    printf("recv MSG_PEEK: %zd '%.*s'\n", n, (int)n, buf);
    n = recvfrom(s, buf, sizeof buf, 0, NULL, NULL);
    printf("recvfrom: %zd '%.*s'\n", n, (int)n, buf);
    struct iovec iov[3] = {{"ab", 2}, {"cde", 3}, {"f", 1}};
    CHECK(writev(c, iov, 3) == 6);
    char b1[2], b2[10];
    struct iovec riov[2] = {{b1, 2}, {b2, 4}};
    read_exact(s, buf, 0);
    wait_bytes(s, 6);
    n = readv(s, riov, 2);
    printf("writev/readv: %zd '%.2s%.4s'\n", n, b1, b2);
    struct msghdr mh; memset(&mh, 0, sizeof mh);
    struct iovec miov = {"msg!", 4};
    mh.msg_iov = &miov; mh.msg_iovlen = 1;
    CHECK(sendmsg(c, &mh, MSG_NOSIGNAL) == 4);
    memset(&mh, 0, sizeof mh);
    struct iovec rmiov = {buf, sizeof buf};
    mh.msg_iov = &rmiov; mh.msg_iovlen = 1;
    n = recvmsg(s, &mh, 0);
    printf("sendmsg/recvmsg: %zd '%.*s'\n", n, (int)n, buf);
    CHECK(send(s, "pong", 4, 0) == 4);
    n = recv(c, buf, 4, MSG_WAITALL);
    printf("send/recv: %zd '%.*s'\n", n, (int)(n > 4 ? 4 : n), buf);
    CHECK(sendto(c, "to", 2, 0, NULL, 0) == 2);
    read_exact(s, buf, 2);
    printf("sendto: '%.2s'\n", buf);

    /* TCP_CORK: a short write waits until the cork comes off (Linux sends it
     * after 200 ms at the latest; 100 ms is checked). */
    CHECK(setsockopt(c, IPPROTO_TCP, TCP_CORK, &one, sizeof one) == 0);
    CHECK(write(c, "corked", 6) == 6);
    struct pollfd corkp = {.fd = s, .events = POLLIN};
    printf("TCP_CORK: readable within 100 ms while corked: %d\n", poll(&corkp, 1, 100));
    int zero = 0;
    CHECK(setsockopt(c, IPPROTO_TCP, TCP_CORK, &zero, sizeof zero) == 0);
    printf("TCP_CORK: readable once it came off: %d\n", poll(&corkp, 1, 5000));
    read_exact(s, buf, 6);
    printf("TCP_CORK: '%.6s'\n", buf);

    /* SO_RCVBUF (reader) and SO_SNDBUF (writer) bound what a nonblocking
     * writer can queue: the second round, once the windows offered before
     * the options are used up, stays far below the default buffers. */
    {
        int rc = connect_to(port);
        int ws = accept(lfd, NULL, NULL);
        CHECK(ws >= 0);
        int small = 8192;
        CHECK(setsockopt(rc, SOL_SOCKET, SO_RCVBUF, &small, sizeof small) == 0);
        CHECK(setsockopt(ws, SOL_SOCKET, SO_SNDBUF, &small, sizeof small) == 0);
        CHECK(fcntl(ws, F_SETFL, O_NONBLOCK) == 0);
        static char chunk[1024], sink[65536];
        long rounds[2] = {0, 0};
        for (int r = 0; r < 2; r++) {
            for (;;) {
                ssize_t w = write(ws, chunk, sizeof chunk);
                if (w < 0) {
                    CHECK(errno == EAGAIN);
                    break;
                }
                rounds[r] += w;
                CHECK(rounds[r] < (64L << 20));
            }
            long got = 0;
            while (got < rounds[r]) {
                ssize_t g = read(rc, sink, sizeof sink);
                CHECK(g > 0);
                got += g;
            }
        }
        printf("SO_RCVBUF/SO_SNDBUF: second round queued under 128 KiB: %d\n", rounds[1] < 128 * 1024);
        close(ws);
        close(rc);
    }

    /* sendfile from a temporary file */
    char tmpl[] = "/tmp/conformanceXXXXXX";
    int tf = mkstemp(tmpl);
    CHECK(tf >= 0);
    unlink(tmpl);
    char big[100000];
    for (size_t i = 0; i < sizeof big; i++) big[i] = (char)(i * 7);
    CHECK(write(tf, big, sizeof big) == (ssize_t)sizeof big);
    off_t off = 0;
    ssize_t sent = 0;
    while (sent < (ssize_t)sizeof big) {
        ssize_t k = sendfile(c, tf, &off, sizeof big - sent);
        CHECK(k > 0);
        sent += k;
    }
    static char back[100000];
    read_exact(s, back, sizeof back);
    printf("sendfile: %zd bytes, offset_ok=%d, same=%d\n", sent, off == (off_t)sizeof big, memcmp(big, back, sizeof big) == 0);
    close(tf);

    /* --- fcntl, ioctl, nonblocking read --- */
    int fl = fcntl(s, F_GETFL);
    printf("F_GETFL nonblock: %d\n", (fl & O_NONBLOCK) != 0);
    CHECK(fcntl(s, F_SETFL, fl | O_NONBLOCK) == 0);
    SHOW("nonblocking read, no data: %ld %s\n", read(s, buf, sizeof buf));
    CHECK(fcntl(s, F_SETFL, fl) == 0);
    int on = 1;
    CHECK(ioctl(s, FIONBIO, &on) == 0);
    printf("FIONBIO -> F_GETFL nonblock: %d\n", (fcntl(s, F_GETFL) & O_NONBLOCK) != 0);
    on = 0;
    CHECK(ioctl(s, FIONBIO, &on) == 0);
    CHECK(fcntl(s, F_SETFD, FD_CLOEXEC) == 0);
    printf("FD_CLOEXEC: %d\n", fcntl(s, F_GETFD) & FD_CLOEXEC);

    /* --- EINTR: a blocking read interrupted by a signal --- */
    struct sigaction act; memset(&act, 0, sizeof act);
    act.sa_handler = on_alarm; /* no SA_RESTART */
    sigaction(SIGALRM, &act, NULL);
    struct itimerval it = {.it_value = {.tv_sec = 0, .tv_usec = 100000}};
    setitimer(ITIMER_REAL, &it, NULL);
    errno = 0;
    n = read(s, buf, sizeof buf);
    printf("blocking read + signal: %zd %s alarms=%d\n", n, ename(errno), (int)alarms);
    setitimer(ITIMER_REAL, &it, NULL);
    struct pollfd pf = {.fd = s, .events = POLLIN};
    errno = 0;
    SHOW("blocking poll + signal: %ld %s\n", poll(&pf, 1, 5000));

    /* --- edge-triggered and level-triggered epoll, EPOLLRDHUP, ONESHOT --- */
    int ep = epoll_create1(EPOLL_CLOEXEC);
    int ep2 = epoll_create(1);
    CHECK(ep >= 0 && ep2 >= 0);
    int pipefd[2];
    CHECK(pipe(pipefd) == 0);
    struct epoll_event ev = {.events = EPOLLIN | EPOLLET | EPOLLRDHUP, .data.u64 = 1};
    CHECK(epoll_ctl(ep, EPOLL_CTL_ADD, s, &ev) == 0);
    errno = 0;
    SHOW("epoll ADD twice: %ld %s\n", epoll_ctl(ep, EPOLL_CTL_ADD, s, &ev));
    ev.events = EPOLLIN; ev.data.u64 = 2;
    CHECK(epoll_ctl(ep, EPOLL_CTL_ADD, pipefd[0], &ev) == 0);
    ev.events = EPOLLIN; ev.data.u64 = 3;
    CHECK(epoll_ctl(ep2, EPOLL_CTL_ADD, s, &ev) == 0);
    struct epoll_event out[8];
    printf("epoll idle: %d\n", epoll_wait(ep, out, 8, 100));
    CHECK(write(c, "0123456789", 10) == 10);
    n = epoll_wait(ep, out, 8, 5000);
    printf("ET after data: %zd data=%llu in=%d\n", n, (unsigned long long)out[0].data.u64, !!(out[0].events & EPOLLIN));
    wait_bytes(s, 10);
    CHECK(read(s, buf, 4) == 4);
    printf("ET after partial read, no new data: %d\n", epoll_wait(ep, out, 8, 100));
    n = epoll_wait(ep2, out, 8, 100);
    printf("LT after partial read: %zd data=%llu\n", n, (unsigned long long)out[0].data.u64);
    CHECK(write(c, "ab", 2) == 2);
    n = epoll_wait(ep, out, 8, 5000);
    printf("ET after more data: %zd\n", n);
    wait_bytes(s, 8);
    n = read(s, buf, sizeof buf);
    printf("drain: %zd\n", n);
    CHECK(write(pipefd[1], "p", 1) == 1);
    n = epoll_pwait(ep, out, 8, 5000, NULL);
    printf("epoll mixed kernel fd: %zd data=%llu\n", n, (unsigned long long)out[0].data.u64);
    char pc; CHECK(read(pipefd[0], &pc, 1) == 1);
    ev.events = EPOLLIN | EPOLLONESHOT; ev.data.u64 = 4;
    CHECK(epoll_ctl(ep2, EPOLL_CTL_MOD, s, &ev) == 0);
    CHECK(write(c, "x", 1) == 1);
    n = epoll_wait(ep2, out, 8, 5000);
    printf("ONESHOT first: %zd data=%llu\n", n, (unsigned long long)out[0].data.u64);
    printf("ONESHOT again: %d\n", epoll_wait(ep2, out, 8, 100));
    CHECK(epoll_ctl(ep2, EPOLL_CTL_MOD, s, &ev) == 0);
    printf("ONESHOT after MOD: %d\n", epoll_wait(ep2, out, 8, 5000));
    CHECK(read(s, buf, 1) == 1);
    CHECK(epoll_ctl(ep2, EPOLL_CTL_DEL, s, NULL) == 0);
    errno = 0;
    SHOW("epoll DEL missing: %ld %s\n", epoll_ctl(ep2, EPOLL_CTL_DEL, s, NULL));

    /* --- select, pselect, ppoll with a kernel fd in the set --- */
    CHECK(write(c, "sel", 3) == 3);
    CHECK(wait_for(s, POLLIN, 5000) & POLLIN);
    fd_set rs, ws; FD_ZERO(&rs); FD_ZERO(&ws);
    FD_SET(s, &rs); FD_SET(pipefd[0], &rs); FD_SET(c, &ws);
    struct timeval tv = {.tv_sec = 5};
    n = select((s > c ? s : c) + 1, &rs, &ws, NULL, &tv);
    printf("select: %zd s_readable=%d pipe_readable=%d c_writable=%d\n", n, FD_ISSET(s, &rs), FD_ISSET(pipefd[0], &rs), FD_ISSET(c, &ws));
    FD_ZERO(&rs); FD_SET(s, &rs);
    struct timespec ts = {.tv_sec = 5};
    n = pselect(s + 1, &rs, NULL, NULL, &ts, NULL);
    printf("pselect: %zd\n", n);
    struct pollfd pp[2] = {{.fd = s, .events = POLLIN}, {.fd = pipefd[0], .events = POLLIN}};
    n = ppoll(pp, 2, &ts, NULL);
    printf("ppoll: %zd s=%d pipe=%d\n", n, pp[0].revents & POLLIN, pp[1].revents);
    read_exact(s, buf, 3);

    /* --- dup, dup2, dup3, F_DUPFD share the socket --- */
    int d = dup(c);
    int d2 = dup2(c, 200);
    int d3 = dup3(c, 201, O_CLOEXEC);
    int d4 = fcntl(c, F_DUPFD_CLOEXEC, 300);
    CHECK(d >= 0 && d2 == 200 && d3 == 201 && d4 >= 300);
    CHECK(write(d, "1", 1) == 1 && write(d2, "2", 1) == 1 && write(d3, "3", 1) == 1 && write(d4, "4", 1) == 1);
    read_exact(s, buf, 4);
    printf("dup: '%.4s'\n", buf);
    close(d2); close(d3); close(d4);
    close(c);
    CHECK(write(d, "5", 1) == 1);
    read_exact(s, buf, 1);
    printf("dup after closing original: '%c'\n", buf[0]);

    /* --- half-close, EOF, writes after it, EPIPE --- */
    CHECK(shutdown(d, SHUT_WR) == 0);
    CHECK(wait_for(s, POLLRDHUP, 5000) & POLLRDHUP);
    int re = wait_for(s, POLLIN | POLLRDHUP, 0);
    printf("peer half-closed: POLLIN=%d POLLRDHUP=%d\n", !!(re & POLLIN), !!(re & POLLRDHUP));
    printf("read at EOF: %zd\n", read(s, buf, sizeof buf));
    printf("read at EOF again: %zd\n", read(s, buf, sizeof buf));
    CHECK(write(s, "bye", 3) == 3);
    read_exact(d, buf, 3);
    printf("write after peer half-close: '%.3s'\n", buf);
    errno = 0;
    SHOW("write after own SHUT_WR: %ld %s\n", write(d, "x", 1));
    close(s);
    CHECK(wait_for(d, POLLIN, 5000) & POLLIN);
    printf("read after peer close: %zd\n", read(d, buf, sizeof buf));
    close(d);

    /* --- nonblocking connect: EINPROGRESS then writable; accept4 flags --- */
    int nb = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    struct sockaddr_in a = addr_of(port);
    int r;
    SHOW("nonblocking connect: %ld %s\n", connect(nb, (struct sockaddr *)&a, sizeof a));
    int w = wait_for(nb, POLLOUT, 5000);
    printf("then: POLLOUT=%d POLLERR=%d\n", !!(w & POLLOUT), !!(w & POLLERR));
    vl = sizeof v;
    CHECK(getsockopt(nb, SOL_SOCKET, SO_ERROR, &v, &vl) == 0);
    printf("SO_ERROR: %d\n", v);
    SHOW("connect again: %ld %s\n", connect(nb, (struct sockaddr *)&a, sizeof a));
    SHOW("connect once more: %ld %s\n", connect(nb, (struct sockaddr *)&a, sizeof a));
    CHECK(wait_for(lfd, POLLIN, 5000) & POLLIN);
    int s2 = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    CHECK(s2 >= 0);
    printf("accept4 flags: nonblock=%d cloexec=%d\n", (fcntl(s2, F_GETFL) & O_NONBLOCK) != 0, fcntl(s2, F_GETFD) & FD_CLOEXEC);
    CHECK(fcntl(lfd, F_SETFL, O_NONBLOCK) == 0);
    errno = 0;
    SHOW("nonblocking accept, none pending: %ld %s\n", accept(lfd, NULL, NULL));
    close(s2); close(nb);

    /* --- refused connect: SO_ERROR --- */
    int rf = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    a = addr_of(port + 3);
    errno = 0;
    r = connect(rf, (struct sockaddr *)&a, sizeof a);
    int e0 = errno;
    if (r < 0 && e0 == EINPROGRESS) {
        w = wait_for(rf, POLLOUT, 5000);
        vl = sizeof v;
        CHECK(getsockopt(rf, SOL_SOCKET, SO_ERROR, &v, &vl) == 0);
        printf("refused connect: POLLOUT=%d POLLERR=%d SO_ERROR=%s\n", !!(w & POLLOUT), !!(w & POLLERR), ename(v));
    } else {
        printf("refused connect: immediate %s\n", ename(e0));
    }
    vl = sizeof v;
    CHECK(getsockopt(rf, SOL_SOCKET, SO_ERROR, &v, &vl) == 0);
    printf("SO_ERROR again: %d\n", v);
    close(rf);
    int rb = socket(AF_INET, SOCK_STREAM, 0);
    SHOW("blocking refused connect: %ld %s\n", connect(rb, (struct sockaddr *)&a, sizeof a));
    close(rb);

    /* --- TCP_INFO and TCP_MAXSEG (values differ: only their shape is
     *     printed) --- */
    int ti = socket(AF_INET, SOCK_STREAM, 0);
    vl = sizeof v;
    CHECK(getsockopt(ti, IPPROTO_TCP, TCP_MAXSEG, &v, &vl) == 0);
    printf("TCP_MAXSEG unconnected: %d\n", v);
    struct tcp_info info;
    socklen_t il = sizeof info;
    CHECK(getsockopt(ti, IPPROTO_TCP, TCP_INFO, &info, &il) == 0);
    printf("TCP_INFO unconnected: state %d\n", info.tcpi_state);
    close(ti);
    CHECK(fcntl(lfd, F_SETFL, 0) == 0);
    int tc = connect_to(port);
    int tsv = accept(lfd, NULL, NULL);
    CHECK(tsv >= 0);
    CHECK(fcntl(tsv, F_SETFL, 0) == 0);
    for (int i = 0; i < 4; i++) {
        CHECK(write(tc, "ping", 4) == 4);
        CHECK(read(tsv, buf, 4) == 4);
        CHECK(write(tsv, "pong", 4) == 4);
        CHECK(read(tc, buf, 4) == 4);
    }
    il = sizeof info;
    CHECK(getsockopt(tc, IPPROTO_TCP, TCP_INFO, &info, &il) == 0);
    printf("TCP_INFO: len %d state %d rtt>0 %d snd_mss>0 %d cwnd>0 %d retransmits %d\n", il == sizeof info,
           info.tcpi_state, info.tcpi_rtt > 0, info.tcpi_snd_mss > 0, info.tcpi_snd_cwnd > 0, info.tcpi_retransmits);
    vl = sizeof v;
    CHECK(getsockopt(tc, IPPROTO_TCP, TCP_MAXSEG, &v, &vl) == 0);
    printf("TCP_MAXSEG connected: %d\n", v > 536 && (unsigned)v == info.tcpi_snd_mss);
    il = 8;
    CHECK(getsockopt(tc, IPPROTO_TCP, TCP_INFO, &info, &il) == 0);
    printf("TCP_INFO short buffer: len %d\n", (int)il);
    close(tc);
    close(tsv);

    close(ep); close(ep2); close(pipefd[0]); close(pipefd[1]); close(lfd);
    printf("done\n");
    return 0;
}
