/* Fork conformance for libtoe_preload: sockets shared by a parent and the
 * processes it forks, as a Linux socket is shared by the processes holding
 * its file. Prints what it observed; the output must be identical on the
 * kernel (127.0.0.1) and under flextoe-run (the service's IP). Nothing
 * printed depends on addresses, ports, pids or timing; every wait is for a
 * condition (a read, waitpid), bounded by alarm().
 *
 * usage: fork_conformance IP PORT   (uses PORT and PORT+1)
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <time.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *ip;
static int port;

#define CHECK(c) do { if (!(c)) { printf("FAILED %s at line %d (errno %s)\n", #c, __LINE__, strerrorname_np(errno) ? strerrorname_np(errno) : "?"); fflush(stdout); _exit(1); } } while (0)

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
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(fd >= 0);
    struct sockaddr_in a = addr_of(p);
    CHECK(connect(fd, (struct sockaddr *)&a, sizeof a) == 0);
    return fd;
}

/* Reads exactly n bytes (or up to EOF/error); returns what read returned last
 * when short. */
static long read_n(int fd, char *buf, long n) {
    long got = 0;
    while (got < n) {
        long r = read(fd, buf + got, n - got);
        if (r <= 0)
            return got > 0 ? got : r;
        got += r;
    }
    return got;
}

static void write_all(int fd, const char *s, long n) {
    while (n > 0) {
        long w = write(fd, s, n);
        CHECK(w > 0);
        s += w;
        n -= w;
    }
}

static int alarm_pipe = -1;
static volatile sig_atomic_t alarms;

/* Counts the signal and tells a waiting child through a pipe (a write to a
 * pipe is safe in a handler). */
static void on_signal(int sig) {
    (void)sig;
    alarms++;
    if (alarm_pipe >= 0) {
        char z = 1;
        if (write(alarm_pipe, &z, 1) != 1) {
            /* nothing to do in a handler */
        }
    }
}

/* A child that writes `msg` to `fd` once the parent's handler ran. */
static pid_t writer_after_signal(int fd, int pipe_rd, const char *msg) {
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        char z;
        CHECK(read(pipe_rd, &z, 1) == 1);
        write_all(fd, msg, strlen(msg));
        _exit(0);
    }
    return pid;
}

static void arm_timer(void) {
    struct itimerval it = {.it_value = {.tv_sec = 0, .tv_usec = 50000}};
    CHECK(setitimer(ITIMER_REAL, &it, NULL) == 0);
}

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

static int child_status(pid_t pid) {
    int st = 0;
    CHECK(waitpid(pid, &st, 0) == pid);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* A connected pair through listener l: client c, server side s. */
static void pair(int l, int p, int *c, int *s) {
    *c = connect_to(p);
    *s = accept(l, NULL, NULL);
    CHECK(*s >= 0);
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s IP PORT\n", argv[0]);
        return 2;
    }
    ip = argv[1];
    port = atoi(argv[2]);
    setvbuf(stdout, NULL, _IONBF, 0);
    alarm(60);
    signal(SIGPIPE, SIG_IGN);
    char buf[256];
    int l = listener(port);
    int c, s;

    /* 1. The child closes its copies and exits: the parent's connection
     *    and listener stay open. */
    pair(l, port, &c, &s);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        close(s);
        close(c);
        close(l);
        _exit(0);
    }
    printf("1 child exit %d\n", child_status(pid));
    write_all(c, "ping", 4);
    long r = read_n(s, buf, 4);
    printf("1 parent reads after the child closed: %ld %.4s\n", r, buf);
    write_all(s, "pong", 4);
    r = read_n(c, buf, 4);
    printf("1 and back: %ld %.4s\n", r, buf);
    close(c);
    close(s);

    /* 2. Fork per connection: the parent closes the accepted socket at once,
     *    the child serves it (poll, read, write, shutdown, close). */
    pair(l, port, &c, &s);
    write_all(c, "hello", 5);
    pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        close(l);
        close(c);
        struct pollfd p = {.fd = s, .events = POLLIN};
        int n = poll(&p, 1, 10000);
        char b[64];
        long k = read_n(s, b, 5);
        char out[64];
        int len = snprintf(out, sizeof out, "child %d %d %ld %.5s", n, (p.revents & POLLIN) != 0, k, b);
        write_all(s, out, len);
        shutdown(s, SHUT_WR);
        close(s);
        _exit(0);
    }
    close(s);
    memset(buf, 0, sizeof buf);
    r = read_n(c, buf, sizeof buf - 1);
    printf("2 the child served it: %ld [%s]\n", r, buf);
    errno = 0;
    r = read(c, buf, 1);
    printf("2 then EOF: %ld %s\n", r, ename(errno));
    printf("2 child exit %d\n", child_status(pid));
    close(c);

    /* 3. A child that exits without closing anything (redis' BGSAVE child)
     *    leaves the connection open for the parent. */
    pair(l, port, &c, &s);
    pid = fork();
    CHECK(pid >= 0);
    if (pid == 0)
        _exit(7);
    printf("3 child exit %d\n", child_status(pid));
    write_all(c, "after", 5);
    r = read_n(s, buf, 5);
    printf("3 parent still reads: %ld %.5s\n", r, buf);

    /* 4. Both write, one after the other: the bytes arrive in order. Then the
     *    parent reads what arrived while the child had the connection. */
    pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        write_all(s, "child-", 6);
        char b[8];
        long k = read_n(s, b, 3);
        _exit(k == 3 && memcmp(b, "abc", 3) == 0 ? 0 : 1);
    }
    r = read_n(c, buf, 6);
    printf("4 from the child: %ld %.6s\n", r, buf);
    write_all(c, "abc", 3);
    printf("4 child read its part: exit %d\n", child_status(pid));
    write_all(s, "parent", 6);
    r = read_n(c, buf, 6);
    printf("4 then from the parent: %ld %.6s\n", r, buf);
    write_all(c, "xyz", 3);
    r = read_n(s, buf, 3);
    printf("4 parent reads after the child: %ld %.3s\n", r, buf);
    close(c);
    close(s);

    /* 5. Pre-fork: two workers accept on the inherited listener, each
     *    serves one connection; the parent only connects. */
    int l2 = listener(port + 1);
    pid_t w[2];
    for (int i = 0; i < 2; i++) {
        w[i] = fork();
        CHECK(w[i] >= 0);
        if (w[i] == 0) {
            close(l);
            int a = accept(l2, NULL, NULL);
            CHECK(a >= 0);
            char b[8];
            long k = read_n(a, b, 4);
            char out[16];
            snprintf(out, sizeof out, "got:%.4s", b);
            write_all(a, out, 8);
            close(a);
            _exit(k == 4 ? 10 + i : 1);
        }
    }
    int c1 = connect_to(port + 1), c2 = connect_to(port + 1);
    write_all(c1, "abcd", 4);
    write_all(c2, "efgh", 4);
    r = read_n(c1, buf, 8);
    printf("5 first client: %ld %.8s\n", r, buf);
    r = read_n(c2, buf, 8);
    printf("5 second client: %ld %.8s\n", r, buf);
    int e0 = child_status(w[0]), e1 = child_status(w[1]);
    printf("5 workers exit %d %d\n", e0, e1);
    close(c1);
    close(c2);

    /* 6. The last holder closing with SO_LINGER 0 resets. */
    pair(l, port, &c, &s);
    pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        close(s);
        _exit(0);
    }
    printf("6 child exit %d\n", child_status(pid));
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    CHECK(setsockopt(s, SOL_SOCKET, SO_LINGER, &lg, sizeof lg) == 0);
    close(s);
    errno = 0;
    r = read(c, buf, 1);
    printf("6 peer after linger-0 close: %ld %s\n", r, ename(errno));
    close(c);

    /* 7. The listener stays with the parent after a child closed it. */
    pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        close(l);
        close(l2);
        _exit(0);
    }
    printf("7 child exit %d\n", child_status(pid));
    pair(l, port, &c, &s);
    write_all(c, "ok", 2);
    r = read_n(s, buf, 2);
    printf("7 parent accepts after: %ld %.2s\n", r, buf);
    close(c);
    close(s);

    /* 8. Signals during a blocking read: SA_RESTART (sigaction, and signal()'s
     *    BSD semantics) continues the read, which returns the data sent
     *    after the handler ran; without it the read fails with EINTR. */
    int pp[2];
    CHECK(pipe(pp) == 0);
    alarm_pipe = pp[1];
    const char *how[3] = {"sigaction SA_RESTART", "signal()", "sigaction without SA_RESTART"};
    for (int k = 0; k < 3; k++) {
        if (k == 1) {
            CHECK(signal(SIGALRM, on_signal) != SIG_ERR);
        } else {
            struct sigaction act;
            memset(&act, 0, sizeof act);
            act.sa_handler = on_signal;
            act.sa_flags = k == 0 ? SA_RESTART : 0;
            CHECK(sigaction(SIGALRM, &act, NULL) == 0);
        }
        struct sigaction seen;
        CHECK(sigaction(SIGALRM, NULL, &seen) == 0);
        printf("8 %s: handler reads back %s, SA_RESTART %d\n", how[k],
               seen.sa_handler == on_signal ? "as installed" : "changed",
               (seen.sa_flags & SA_RESTART) != 0);
        pair(l, port, &c, &s);
        alarms = 0;
        pid = writer_after_signal(c, pp[0], "late");
        arm_timer();
        memset(buf, 0, sizeof buf);
        errno = 0;
        r = read(s, buf, 4);
        printf("8 %s: read %ld %s [%.4s] signals=%d\n", how[k], r, ename(errno), r > 0 ? buf : "", (int)alarms);
        if (r < 0) {
            r = read_n(s, buf, 4);
            printf("8 %s: read again %ld [%.4s]\n", how[k], r, buf);
        }
        printf("8 writer exit %d\n", child_status(pid));
        close(c);
        close(s);
    }

    /* 9. A blocking accept across SIGCHLD (signal(): restarted), as a
     *    fork-per-connection server reaping its children. */
    CHECK(signal(SIGCHLD, on_signal) != SIG_ERR);
    alarms = 0;
    pid_t connector = fork();
    CHECK(connector >= 0);
    if (connector == 0) {
        char z;
        CHECK(read(pp[0], &z, 1) == 1);
        int k = connect_to(port);
        write_all(k, "hi", 2);
        close(k);
        _exit(0);
    }
    pid_t quick = fork();
    CHECK(quick >= 0);
    if (quick == 0)
        _exit(3);
    errno = 0;
    s = accept(l, NULL, NULL);
    printf("9 accept across SIGCHLD: %s %s signals>=1 %d\n", s >= 0 ? "ok" : "failed", ename(errno), alarms >= 1);
    if (s >= 0) {
        r = read_n(s, buf, 2);
        printf("9 read %ld %.2s\n", r, buf);
        close(s);
    }
    signal(SIGCHLD, SIG_DFL);
    printf("9 children exit %d %d\n", child_status(quick), child_status(connector));
    /* 10. SO_LINGER with a timeout: the last close waits until what was
     *     written is acknowledged, at most the timeout (then the connection
     *     goes on in the background and the data still arrives). */
    pair(l, port, &c, &s);
    CHECK(fcntl(c, F_SETFL, O_NONBLOCK) == 0);
    static char big[65536];
    memset(big, 'z', sizeof big);
    long total = 0, wr;
    /* Until nothing more goes for 300 ms: both buffers full, the peer's
     * window closed. */
    for (;;) {
        while ((wr = write(c, big, sizeof big)) > 0)
            total += wr;
        CHECK(errno == EAGAIN);
        struct pollfd pw = {.fd = c, .events = POLLOUT};
        if (poll(&pw, 1, 300) == 0)
            break;
    }
    struct linger lg1 = {.l_onoff = 1, .l_linger = 1};
    CHECK(setsockopt(c, SOL_SOCKET, SO_LINGER, &lg1, sizeof lg1) == 0);
    double t0 = now_s();
    r = close(c);
    double dt = now_s() - t0;
    printf("10 close with nobody reading: %ld, waited the linger time %d\n", r, dt > 0.8 && dt < 5);
    long got = 0;
    while ((r = read(s, big, sizeof big)) > 0)
        got += r;
    printf("10 the peer still gets everything: %d, then %ld\n", got == total, r);
    close(s);
    pair(l, port, &c, &s);
    pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        close(c);
        long n = 0, k;
        while ((k = read(s, big, sizeof big)) > 0)
            n += k;
        _exit(n == 4L << 20 ? 0 : 1);
    }
    close(s);
    for (int i = 0; i < 64; i++)
        write_all(c, big, sizeof big);
    struct linger lg5 = {.l_onoff = 1, .l_linger = 5};
    CHECK(setsockopt(c, SOL_SOCKET, SO_LINGER, &lg5, sizeof lg5) == 0);
    t0 = now_s();
    r = close(c);
    dt = now_s() - t0;
    printf("10 close with a reader: %ld, returned before the timeout %d\n", r, dt < 4);
    printf("10 reader exit %d\n", child_status(pid));

    /* 11. A grandchild: the child forks again without touching the socket;
     *     the grandchild writes on it, the parent reads. */
    pair(l, port, &c, &s);
    pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        pid_t g = fork();
        CHECK(g >= 0);
        if (g == 0) {
            write_all(s, "grand", 5);
            _exit(0);
        }
        _exit(child_status(g));
    }
    printf("11 child and grandchild exit %d\n", child_status(pid));
    r = read_n(c, buf, 5);
    printf("11 from the grandchild: %ld %.5s\n", r, buf);
    write_all(s, "back", 4);
    r = read_n(c, buf, 4);
    printf("11 then from the parent: %ld %.4s\n", r, buf);
    close(c);
    close(s);

    /* 12. SO_REUSEPORT: two listening sockets on one port (PORT+2), each
     *     kept by one of two pre-forked workers (nginx's `reuseport`); a
     *     socket without the option cannot join them. Each connection is
     *     served by one worker, whichever; after one worker closed its
     *     socket, the other still serves the port. */
    int one = 1;
    int rl[2];
    for (int i = 0; i < 2; i++) {
        rl[i] = socket(AF_INET, SOCK_STREAM, 0);
        CHECK(rl[i] >= 0);
        CHECK(setsockopt(rl[i], SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) == 0);
        struct sockaddr_in a = addr_of(port + 2);
        CHECK(bind(rl[i], (struct sockaddr *)&a, sizeof a) == 0);
        CHECK(listen(rl[i], 16) == 0);
    }
    printf("12 two SO_REUSEPORT listeners on one port: ok\n");
    {
        int x = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = addr_of(port + 2);
        errno = 0;
        int e = bind(x, (struct sockaddr *)&a, sizeof a) == 0 ? listen(x, 16) : -1;
        printf("12 a third without SO_REUSEPORT: bind or listen %d %s\n", e, ename(errno));
        close(x);
    }
    pid_t workers[2];
    for (int i = 0; i < 2; i++) {
        fflush(stdout);
        workers[i] = fork();
        CHECK(workers[i] >= 0);
        if (workers[i] == 0) {
            close(rl[1 - i]);
            /* Serves until the parent says stop: a connection whose first
             * byte is 'q'. */
            for (;;) {
                int a = accept(rl[i], NULL, NULL);
                CHECK(a >= 0);
                char q;
                CHECK(read(a, &q, 1) == 1);
                write_all(a, q == 'q' ? "bye" : "hi!", 3);
                close(a);
                if (q == 'q')
                    _exit(0);
            }
        }
    }
    close(rl[0]);
    close(rl[1]);
    int served = 0;
    for (int i = 0; i < 8; i++) {
        int k = connect_to(port + 2);
        write_all(k, "x", 1);
        if (read_n(k, buf, 3) == 3 && memcmp(buf, "hi!", 3) == 0)
            served++;
        close(k);
    }
    printf("12 served %d of 8\n", served);
    /* Stop one worker, then the port is still served by the other. */
    int k = connect_to(port + 2);
    write_all(k, "q", 1);
    CHECK(read_n(k, buf, 3) == 3);
    close(k);
    int stopped = waitpid(-1, NULL, 0);
    CHECK(stopped == workers[0] || stopped == workers[1]);
    k = connect_to(port + 2);
    write_all(k, "x", 1);
    r = read_n(k, buf, 3);
    printf("12 after one worker left: %ld %.3s\n", r, buf);
    close(k);
    k = connect_to(port + 2);
    write_all(k, "q", 1);
    CHECK(read_n(k, buf, 3) == 3);
    close(k);
    CHECK(waitpid(-1, NULL, 0) > 0);

    close(l);
    close(l2);
    printf("done\n");
    return 0;
}
