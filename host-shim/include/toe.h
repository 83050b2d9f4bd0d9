/*
 * libtoe: C API of the FlexTOE host shim.
 *
 * The host runs no TCP: connections live in the DPU's TCP engine, reached
 * over shared-memory rings set up by toe_open(). Link with -ltoe (libtoe.so
 * or libtoe.a from `cargo build -p host-shim`; the static library also
 * needs -lpthread -ldl -lm).
 *
 * Conventions:
 *  - Listener and connection handles are small non-negative ints, private
 *    to one toe_t (they are not file descriptors).
 *  - Errors are returned as negative errno values (-ECONNREFUSED,
 *    -ECONNRESET, -ETIMEDOUT, -EAGAIN, -EPIPE, -EBADF, ...); errno itself is
 *    only set by toe_open().
 *  - Calls block unless the handle was made non-blocking with
 *    toe_set_nonblocking(); a blocked call sleeps (no CPU) after a short
 *    spin.
 *  - Every function may be called from any thread, concurrently, except
 *    toe_close(), which must be the last call on its toe_t.
 */
#ifndef FLEXTOE_TOE_H
#define FLEXTOE_TOE_H

#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/* An attachment to the DPU service (opaque). */
typedef struct toe toe_t;

/* Attaches to the DPU service through the control socket at control_path;
 * NULL: $FLEXTOE_CONTROL, else /run/flextoe/control.sock. Returns NULL with
 * errno set on failure. */
toe_t *toe_open(const char *control_path);

/* Stores the DPU's IPv4 address (what peers connect to) in *out. Returns 0
 * or -errno. */
int toe_local_ip(toe_t *t, struct in_addr *out);

/* Closes every handle (connections are closed, listeners stopped) and
 * detaches. No other call on t may be running or follow. NULL is ignored. */
void toe_close(toe_t *t);

/* Listens on port (all addresses; port 0 is not supported: -EINVAL);
 * backlog <= 0: the service default. Returns a listener handle or -errno
 * (-EADDRINUSE, ...). */
int toe_listen(toe_t *t, uint16_t port, int backlog);

/* Accepts a connection; fills *peer (AF_INET) unless peer is NULL. Returns a
 * connection handle or -errno (-EAGAIN: non-blocking and nothing waits). */
int toe_accept(toe_t *t, int listener, struct sockaddr_in *peer);

/* Connects to addr (AF_INET, else -EAFNOSUPPORT), blocking until the
 * connection is established. Returns a connection handle or -errno
 * (-ECONNREFUSED, -ETIMEDOUT, -EHOSTUNREACH, ...). */
int toe_connect(toe_t *t, const struct sockaddr_in *addr);

/* Writes up to len bytes. Returns the number written (> 0 unless len is 0)
 * or -errno (-EAGAIN: non-blocking and no space; -EPIPE: after a reset or a
 * write shutdown). */
ssize_t toe_send(toe_t *t, int conn, const void *buf, size_t len);

/* Reads up to len bytes. Returns the number read, 0 at end of stream, or
 * -errno (-EAGAIN: non-blocking and nothing to read; -ECONNRESET). */
ssize_t toe_recv(toe_t *t, int conn, void *buf, size_t len);

/* Shuts down SHUT_RD (local: further data is discarded), SHUT_WR (FIN after
 * the data written so far) or SHUT_RDWR. Returns 0 or -errno. */
int toe_shutdown(toe_t *t, int conn, int how);

/* Closes a connection handle (FIN; RST if data was left unread) or a
 * listener handle. Returns 0 or -EBADF. */
int toe_close_conn(toe_t *t, int conn);

/* on != 0: toe_send/toe_recv (connection) or toe_accept (listener) return
 * -EAGAIN instead of waiting. Returns 0 or -errno. */
int toe_set_nonblocking(toe_t *t, int handle, int on);

/* A connection's congestion control by its TCP_CONGESTION name, "reno",
 * "dctcp", "timely" or "dctcp-rate". Returns 0, -ENOENT for another name, or -errno. */
int toe_set_congestion_control(toe_t *t, int conn, const char *name);

/* Caps a connection's sending rate at bytes_per_sec, its segments paced by
 * the DPU (SO_MAX_PACING_RATE); 0 removes the cap. Returns 0 or -errno. */
int toe_set_max_pacing_rate(toe_t *t, int conn, uint64_t bytes_per_sec);

/* TCP_NODELAY: on = 0 turns Nagle's algorithm on (a segment shorter than the
 * MSS waits while data is unacknowledged); the default is on = 1 (no Nagle).
 * TCP_CORK: on = 1 holds segments shorter than the MSS until on = 0.
 * Return 0 or -errno. */
int toe_set_nodelay(toe_t *t, int conn, int on);
int toe_set_cork(toe_t *t, int conn, int on);

/* TCP keepalive (SO_KEEPALIVE with TCP_KEEPIDLE, TCP_KEEPINTVL, TCP_KEEPCNT):
 * after idle_secs without a segment from the peer, probes every
 * interval_secs; after count unanswered probes the connection is reset and
 * calls fail with -ETIMEDOUT. idle_secs = 0 turns it off. Returns 0, -EINVAL
 * (idle and interval 1-32767, count 1-127), or -errno. */
int toe_set_keepalive(toe_t *t, int conn, int idle_secs, int interval_secs, int count);

/* Readiness of a connection, without waiting: a mask of POLLIN (data, end
 * of stream or error), POLLOUT (space or error), POLLRDHUP (the peer is done
 * sending), POLLERR and POLLHUP from <poll.h>, or -errno. */
int toe_poll(toe_t *t, int conn);

/* One receive or send of toe_submit. */
#define TOE_OP_RECV 0
#define TOE_OP_SEND 1
struct toe_op {
    int conn;       /* connection handle */
    int op;         /* TOE_OP_RECV or TOE_OP_SEND */
    void *buf;      /* where to read into, or what to send */
    size_t len;
    ssize_t result; /* out: what toe_recv/toe_send would return, never
                     * waiting (-EAGAIN where they would wait) */
};

/* Runs n receives and sends, on any connections of t, in one call that
 * never waits (as an event loop handles what one wait returned): per
 * context one lock, one poll of its events and one push of the requests,
 * with at most one doorbell, where separate calls pay each per call.
 * Operations on one connection run in their order. Each op's result is set
 * (-EBADF for a bad handle, -EINVAL for a bad op or a receive buffer that
 * overlaps another receive's; buffers must not overlap the ops array).
 * Returns 0, or -errno (-EINVAL: t is NULL; -EFAULT: ops is NULL with n > 0). */
int toe_submit(toe_t *t, struct toe_op *ops, size_t n);

#ifdef __cplusplus
}
#endif

#endif /* FLEXTOE_TOE_H */
