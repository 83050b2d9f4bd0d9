/*
 * Echo server and client over libtoe, in one program.
 *
 *   echo both PORT [BYTES]        listen on PORT, serve one connection in a
 *                                 thread, connect to it from the DPU's own
 *                                 address ($ECHO_HOST overrides), send BYTES
 *                                 (default 1 MiB) and check the echo
 *   echo server PORT              echo every connection until killed
 *   echo client HOST PORT [BYTES] send BYTES to HOST:PORT, check the echo
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

static uint16_t parse_port(const char *s) {
    long p = strtol(s, NULL, 10);
    if (p <= 0 || p > 65535) {
        fprintf(stderr, "echo: bad port %s\n", s);
        exit(2);
    }
    return (uint16_t)p;
}

static int usage(void) {
    fprintf(stderr, "usage: echo both PORT [BYTES] | echo server PORT | "
                    "echo client HOST PORT [BYTES]\n");
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
    } else if (strcmp(argv[1], "client") == 0 && argc >= 4) {
        struct sockaddr_in addr;
        memset(&addr, 0, sizeof addr);
        addr.sin_family = AF_INET;
        addr.sin_port = htons(parse_port(argv[3]));
        if (inet_pton(AF_INET, argv[2], &addr.sin_addr) != 1) {
            fprintf(stderr, "echo: bad host %s\n", argv[2]);
            return 2;
        }
        uint64_t total = argc > 4 ? strtoull(argv[4], NULL, 10) : 1u << 20;
        status = run_client(&addr, total);
    } else {
        status = usage();
    }
    toe_close(toe);
    return status;
}
