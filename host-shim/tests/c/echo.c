/*
 * Echo server and client over libtoe, in one program.
 *
 *   echo both PORT [BYTES]        listen on PORT, serve one connection in a
 *                                 thread, connect to it from the DPU's own
 *                                 address ($ECHO_HOST overrides), send BYTES
 *                                 (default 1 MiB) and check the echo
 *   echo server PORT              echo every connection until killed
 *   echo client HOST PORT [BYTES] send BYTES to HOST:PORT, check the echo
 *   echo many HOST PORT CONNS BYTES [CHUNK [single]]
 *                                 the same on CONNS connections at once,
 *                                 every send and receive of a round in one
 *                                 toe_submit batch (non-blocking), CHUNK
 *                                 bytes per send (default 16384); "single":
 *                                 one toe_submit per operation instead (the
 *                                 cost of separate calls, for comparison)
 *
 * The control socket comes from $FLEXTOE_CONTROL (default
 * /run/flextoe/control.sock). Exit status 0 and "ok BYTES" on success.
 *
 * Build: cc -std=c11 -Wall -Wextra -I host-shim/include echo.c \
 *        -L target/debug -ltoe -lpthread -o echo
 */
#define _POSIX_C_SOURCE 200809L

#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "toe.h"

#define CHUNK 16384

static toe_t *toe;

static void die(const char *what, long err) {
    fprintf(stderr, "echo: %s: %s\n", what, strerror(err < 0 ? (int)-err : (int)err));
    exit(1);
}

/* Deterministic test data: byte i of the stream. */
static unsigned char pattern(uint64_t i) {
    uint64_t x = i * 0x9E3779B97F4A7C15ull;
    return (unsigned char)(x >> 56) ^ (unsigned char)i;
}

static int send_all(int conn, const unsigned char *p, size_t len) {
    while (len > 0) {
        ssize_t n = toe_send(toe, conn, p, len);
        if (n < 0)
            return (int)n;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Echoes one connection until the peer's EOF, then closes it. */
static void *serve(void *arg) {
    int conn = (int)(intptr_t)arg;
    unsigned char buf[CHUNK];
    for (;;) {
        ssize_t n = toe_recv(toe, conn, buf, sizeof buf);
        if (n == 0)
            break;
        if (n < 0) {
            fprintf(stderr, "echo: server recv: %s\n", strerror((int)-n));
            break;
        }
        int r = send_all(conn, buf, (size_t)n);
        if (r < 0) {
            fprintf(stderr, "echo: server send: %s\n", strerror(-r));
            break;
        }
    }
    toe_shutdown(toe, conn, SHUT_WR);
    toe_close_conn(toe, conn);
    return NULL;
}

struct accept_args {
    int listener;
    int forever;
};

static void *acceptor(void *arg) {
    struct accept_args *a = arg;
    do {
        struct sockaddr_in peer;
        int conn = toe_accept(toe, a->listener, &peer);
        if (conn < 0)
            die("accept", conn);
        if (!a->forever) {
            serve((void *)(intptr_t)conn);
            break;
        }
        pthread_t t;
        if (pthread_create(&t, NULL, serve, (void *)(intptr_t)conn) != 0)
            die("pthread_create", errno);
        pthread_detach(t);
    } while (a->forever);
    return NULL;
}

/* Sends `total` bytes in chunks, reading each chunk's echo before the next. */
static int run_client(const struct sockaddr_in *addr, uint64_t total) {
    int conn = toe_connect(toe, addr);
    if (conn < 0)
        die("connect", conn);
    unsigned char out[CHUNK], in[CHUNK];
    uint64_t sent = 0;
    while (sent < total) {
        size_t len = total - sent < CHUNK ? (size_t)(total - sent) : CHUNK;
        for (size_t i = 0; i < len; i++)
            out[i] = pattern(sent + i);
        int r = send_all(conn, out, len);
        if (r < 0)
            die("send", r);
        size_t got = 0;
        while (got < len) {
            ssize_t n = toe_recv(toe, conn, in + got, len - got);
            if (n == 0) {
                fprintf(stderr, "echo: early EOF after %llu bytes\n",
                        (unsigned long long)(sent + got));
                return 1;
            }
            if (n < 0)
                die("recv", n);
            got += (size_t)n;
        }
        if (memcmp(in, out, len) != 0) {
            fprintf(stderr, "echo: echoed data differs in bytes %llu..%llu\n",
                    (unsigned long long)sent, (unsigned long long)(sent + len));
            return 1;
        }
        sent += len;
    }
    int r = toe_shutdown(toe, conn, SHUT_WR);
    if (r < 0)
        die("shutdown", r);
    ssize_t n = toe_recv(toe, conn, in, sizeof in);
    if (n != 0) {
        fprintf(stderr, "echo: expected EOF after the echo, got %zd\n", n);
        return 1;
    }
    toe_close_conn(toe, conn);
    printf("ok %llu\n", (unsigned long long)total);
    return 0;
}

#define MAX_CONNS 64

/* CONNS connections moving BYTES each, every round one toe_submit of a send
 * per connection with data left, then batches of receives until each has
 * its echo: checks the results and the data. */
static size_t chunk = CHUNK;
static int single;
static uint64_t ns_in_calls, batches, ops_run;

static uint64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

/* One batch, or (single) one call per operation; times and counts them. */
static void submit(struct toe_op *ops, int n) {
    batches++;
    ops_run += (uint64_t)n;
    uint64_t start = now_ns();
    for (int j = 0; j < (single ? n : 1); j++) {
        int r = single ? toe_submit(toe, ops + j, 1) : toe_submit(toe, ops, (size_t)n);
        if (r < 0)
            die("submit", r);
    }
    ns_in_calls += now_ns() - start;
}

/* Which of the connections `handle` is (it is one of them). */
static int index_of(const int *conn, int handle) {
    int i = 0;
    while (conn[i] != handle)
        i++;
    return i;
}

static int run_many(const struct sockaddr_in *addr, int conns, uint64_t total) {
    int conn[MAX_CONNS];
    static unsigned char out[MAX_CONNS][CHUNK], in[MAX_CONNS][CHUNK];
    uint64_t sent[MAX_CONNS] = {0}, echoed[MAX_CONNS] = {0};
    size_t pending[MAX_CONNS] = {0}; /* bytes sent this round, echo awaited */
    struct toe_op ops[MAX_CONNS];
    for (int i = 0; i < conns; i++) {
        conn[i] = toe_connect(toe, addr);
        if (conn[i] < 0)
            die("connect", conn[i]);
        int r = toe_set_nonblocking(toe, conn[i], 1);
        if (r < 0)
            die("set_nonblocking", r);
    }
    uint64_t moved = 0;
    for (;;) {
        int n = 0;
        for (int i = 0; i < conns; i++) {
            if (pending[i] > 0 || sent[i] == total)
                continue;
            size_t len = total - sent[i] < chunk ? (size_t)(total - sent[i]) : chunk;
            for (size_t k = 0; k < len; k++)
                out[i][k] = pattern(sent[i] + k);
            ops[n++] = (struct toe_op){conn[i], TOE_OP_SEND, out[i], len, 0};
        }
        if (n > 0) {
            submit(ops, n);
            for (int j = 0; j < n; j++) {
                int i = index_of(conn, ops[j].conn);
                if (ops[j].result == -EAGAIN)
                    continue;
                if (ops[j].result <= 0)
                    die("batched send", (long)ops[j].result);
                moved++;
                /* A short send: the rest goes in the next round. */
                pending[i] = (size_t)ops[j].result;
                sent[i] += pending[i];
            }
        }
        n = 0;
        for (int i = 0; i < conns; i++) {
            if (pending[i] > 0) {
                size_t got = (size_t)(echoed[i] - (sent[i] - pending[i]));
                ops[n++] = (struct toe_op){conn[i], TOE_OP_RECV, in[i] + got,
                                           pending[i] - got, 0};
            }
        }
        if (n == 0) {
            int done = 1;
            for (int i = 0; i < conns; i++)
                done &= sent[i] == total;
            if (done)
                break;
            continue;
        }
        submit(ops, n);
        for (int j = 0; j < n; j++) {
            int i = index_of(conn, ops[j].conn);
            if (ops[j].result == -EAGAIN)
                continue;
            if (ops[j].result <= 0) {
                fprintf(stderr, "echo: batched recv on connection %d: %zd\n", i,
                        ops[j].result);
                return 1;
            }
            echoed[i] += (uint64_t)ops[j].result;
            moved++;
            uint64_t start = sent[i] - pending[i];
            if (echoed[i] == sent[i]) {
                for (size_t k = 0; k < pending[i]; k++) {
                    if (in[i][k] != pattern(start + k)) {
                        fprintf(stderr, "echo: connection %d: byte %llu differs\n", i,
                                (unsigned long long)(start + k));
                        return 1;
                    }
                }
                pending[i] = 0;
            }
        }
    }
    /* A bad op and a bad handle are reported per op. */
    unsigned char byte = 0;
    struct toe_op bad[2] = {{conn[0], 7, &byte, 1, 0}, {-1, TOE_OP_RECV, &byte, 1, 0}};
    if (toe_submit(toe, bad, 2) != 0 || bad[0].result != -EINVAL || bad[1].result != -EBADF) {
        fprintf(stderr, "echo: bad ops gave %zd %zd\n", bad[0].result, bad[1].result);
        return 1;
    }
    /* Two receives into the same byte: one is refused. */
    struct toe_op twice[2] = {{conn[0], TOE_OP_RECV, &byte, 1, 0},
                              {conn[conns - 1], TOE_OP_RECV, &byte, 1, 0}};
    if (toe_submit(toe, twice, 2) != 0 ||
        (twice[0].result == -EINVAL) + (twice[1].result == -EINVAL) != 1) {
        fprintf(stderr, "echo: overlapping receives gave %zd %zd\n", twice[0].result,
                twice[1].result);
        return 1;
    }
    for (int i = 0; i < conns; i++)
        toe_close_conn(toe, conn[i]);
    printf("ok %llu x %d in %llu batches of %llu ops, %llu moved data, %llu ns in the calls\n",
           (unsigned long long)total, conns, (unsigned long long)batches,
           (unsigned long long)ops_run, (unsigned long long)moved,
           (unsigned long long)ns_in_calls);
    return 0;
}

static uint16_t parse_port(const char *s) {
    long p = strtol(s, NULL, 10);
    if (p <= 0 || p > 65535) {
        fprintf(stderr, "echo: bad port %s\n", s);
        exit(2);
    }
    return (uint16_t)p;
}

/* HOST PORT as an address; exits with status 2 on a bad one. */
static struct sockaddr_in parse_addr(const char *host, const char *port) {
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons(parse_port(port));
    if (inet_pton(AF_INET, host, &addr.sin_addr) != 1) {
        fprintf(stderr, "echo: bad host %s\n", host);
        exit(2);
    }
    return addr;
}

static int usage(void) {
    fprintf(stderr, "usage: echo both PORT [BYTES] | echo server PORT | "
                    "echo client HOST PORT [BYTES] | "
                    "echo many HOST PORT CONNS BYTES [CHUNK [single]]\n");
    return 2;
}

int main(int argc, char **argv) {
    if (argc < 3)
        return usage();
    toe = toe_open(NULL);
    if (toe == NULL)
        die("toe_open", errno);
    int status = 0;
    if (strcmp(argv[1], "both") == 0 || strcmp(argv[1], "server") == 0) {
        int both = strcmp(argv[1], "both") == 0;
        uint16_t port = parse_port(argv[2]);
        int listener = toe_listen(toe, port, 0);
        if (listener < 0)
            die("listen", listener);
        /* The ready line tests wait for before connecting. */
        fprintf(stderr, "echo: listening on %u\n", (unsigned)port);
        struct accept_args args = {listener, !both};
        if (!both) {
            acceptor(&args);
        } else {
            pthread_t server;
            if (pthread_create(&server, NULL, acceptor, &args) != 0)
                die("pthread_create", errno);
            struct sockaddr_in addr;
            memset(&addr, 0, sizeof addr);
            addr.sin_family = AF_INET;
            addr.sin_port = htons(port);
            const char *host = getenv("ECHO_HOST");
            if (host != NULL) {
                if (inet_pton(AF_INET, host, &addr.sin_addr) != 1) {
                    fprintf(stderr, "echo: bad ECHO_HOST %s\n", host);
                    return 2;
                }
            } else {
                int r = toe_local_ip(toe, &addr.sin_addr);
                if (r < 0)
                    die("toe_local_ip", r);
            }
            uint64_t total = argc > 3 ? strtoull(argv[3], NULL, 10) : 1u << 20;
            status = run_client(&addr, total);
            pthread_join(server, NULL);
        }
        toe_close_conn(toe, listener);
    } else if (strcmp(argv[1], "many") == 0 && argc >= 6) {
        struct sockaddr_in addr = parse_addr(argv[2], argv[3]);
        int conns = atoi(argv[4]);
        if (conns < 1 || conns > MAX_CONNS) {
            fprintf(stderr, "echo: 1..%d connections\n", MAX_CONNS);
            return 2;
        }
        if (argc > 6)
            chunk = (size_t)strtoull(argv[6], NULL, 10);
        if (chunk < 1 || chunk > CHUNK) {
            fprintf(stderr, "echo: chunk 1..%d\n", CHUNK);
            return 2;
        }
        single = argc > 7 && strcmp(argv[7], "single") == 0;
        status = run_many(&addr, conns, strtoull(argv[5], NULL, 10));
    } else if (strcmp(argv[1], "client") == 0 && argc >= 4) {
        struct sockaddr_in addr = parse_addr(argv[2], argv[3]);
        uint64_t total = argc > 4 ? strtoull(argv[4], NULL, 10) : 1u << 20;
        status = run_client(&addr, total);
    } else {
        status = usage();
    }
    toe_close(toe);
    return status;
}
