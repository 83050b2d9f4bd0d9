/* Exec conformance for libtoe_preload: sockets without FD_CLOEXEC survive
 * execve and work in the new program, as Linux sockets do. Prints what it
 * observed; the output must be identical on the kernel (127.0.0.1) and
 * under flextoe-run (the service's IP). Nothing printed depends on
 * addresses, ports, pids or timing; every wait is for a condition (a read,
 * waitpid), bounded by alarm().
 *
 * usage: exec_conformance IP PORT   (uses PORT and PORT+1)
 * The program runs itself again through each exec call (--inetd,
 * --check-closed, --phase2: see below).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *ip;

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

static int child_status(pid_t pid) {
    int st = 0;
    CHECK(waitpid(pid, &st, 0) == pid);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* --inetd: run by execl in a forked child whose stdin and stdout are the
 * accepted connection (inetd's way). */
static int inetd(void) {
    char buf[16] = {0};
    CHECK(read_n(0, buf, 4) == 4);
    char reply[64];
    int n = snprintf(reply, sizeof reply, "pong from the exec'd child to %s", buf);
    write_all(1, reply, n);
    return 0;
}

/* --check-closed FD: run by execlp; FD had FD_CLOEXEC, so it is closed. */
static int check_closed(const char *fd_text) {
    int fd = atoi(fd_text);
    errno = 0;
    int r = fcntl(fd, F_GETFD);
    printf("cloexec: fcntl after exec %d %s\n", r, ename(errno));
    fflush(stdout);
    return 0;
}

/* --phase2 IP PORT L C S: this process after its own execve, with the
 * listener L and both ends C, S of a connection that had unread data. */
static int phase2(int p, int l, int c, int s) {
    char buf[64] = {0};
    CHECK(read_n(s, buf, 11) == 11);
    printf("exec: read what arrived before the exec: %s\n", buf);
    write_all(s, "after exec", 10);
    memset(buf, 0, sizeof buf);
    CHECK(read_n(c, buf, 10) == 10);
    printf("exec: both ends still work: %s\n", buf);
    int c2 = connect_to(p);
    int s2 = accept(l, NULL, NULL);
    CHECK(s2 >= 0);
    write_all(c2, "new", 3);
    memset(buf, 0, sizeof buf);
    CHECK(read_n(s2, buf, 3) == 3);
    printf("exec: the inherited listener accepts: %s\n", buf);
    int flags = fcntl(l, F_GETFL);
    printf("exec: listener O_NONBLOCK kept: %d\n", (flags & O_NONBLOCK) != 0);
    errno = 0;
    int r = accept(l, NULL, NULL);
    printf("exec: accept on the empty nonblocking listener: %d %s\n", r, ename(errno));
    close(c2);
    close(s2);
    close(c);
    close(s);
    close(l);
    printf("done\n");
    fflush(stdout);
    return 0;
}

int main(int argc, char **argv) {
    alarm(30);
    if (argc == 2 && strcmp(argv[1], "--inetd") == 0)
        return inetd();
    if (argc == 3 && strcmp(argv[1], "--check-closed") == 0)
        return check_closed(argv[2]);
    if (argc == 7 && strcmp(argv[1], "--phase2") == 0) {
        ip = argv[2];
        return phase2(atoi(argv[3]), atoi(argv[4]), atoi(argv[5]), atoi(argv[6]));
    }
    if (argc != 3) {
        fprintf(stderr, "usage: %s IP PORT\n", argv[0]);
        return 2;
    }
    ip = argv[1];
    int port = atoi(argv[2]);
    char self[4096];
    ssize_t sl = readlink("/proc/self/exe", self, sizeof self - 1);
    CHECK(sl > 0);
    self[sl] = 0;

    /* 1. inetd-style: a forked child gets the accepted connection as stdin
     * and stdout, and execl's a program that serves it. The parent closed
     * its copy: the connection lives in the exec'd program until it exits. */
    int l = listener(port);
    int c = connect_to(port);
    int s = accept(l, NULL, NULL);
    CHECK(s >= 0);
    fflush(stdout);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        CHECK(dup2(s, 0) == 0);
        CHECK(dup2(s, 1) == 1);
        close(s);
        close(c);
        close(l);
        execl(self, self, "--inetd", (char *)NULL);
        _exit(127);
    }
    close(s);
    write_all(c, "ping", 4);
    char buf[128] = {0};
    long n = read_n(c, buf, sizeof buf - 1);
    printf("inetd: %ld '%s'\n", n, buf);
    printf("inetd: child exit %d\n", child_status(pid));
    close(c);

    /* 2. FD_CLOEXEC: the socket is gone in the exec'd program (execlp) and
     * stays open in the parent. */
    c = connect_to(port);
    s = accept4(l, NULL, NULL, SOCK_CLOEXEC);
    CHECK(s >= 0);
    CHECK(dup3(s, 100, O_CLOEXEC) == 100);
    close(s);
    char fdtext[16];
    snprintf(fdtext, sizeof fdtext, "%d", 100);
    fflush(stdout);
    pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        execlp(self, self, "--check-closed", fdtext, (char *)NULL);
        _exit(127);
    }
    printf("cloexec: child exit %d\n", child_status(pid));
    write_all(c, "still", 5);
    memset(buf, 0, sizeof buf);
    CHECK(read_n(100, buf, 5) == 5);
    printf("cloexec: the parent's copy works: %s\n", buf);
    close(100);
    close(c);
    close(l);

    /* 3. This process execs itself (execve) with a nonblocking listener and
     * both ends of a connection whose data is not read yet. */
    int l3 = listener(port + 1);
    int c3 = connect_to(port + 1);
    int s3 = accept(l3, NULL, NULL);
    CHECK(s3 >= 0);
    CHECK(fcntl(l3, F_SETFL, O_NONBLOCK) == 0);
    write_all(c3, "before exec", 11);
    char a[5][16];
    snprintf(a[0], sizeof a[0], "%d", port + 1);
    snprintf(a[1], sizeof a[1], "%d", l3);
    snprintf(a[2], sizeof a[2], "%d", c3);
    snprintf(a[3], sizeof a[3], "%d", s3);
    char *args[] = {self, "--phase2", (char *)ip, a[0], a[1], a[2], a[3], NULL};
    fflush(stdout);
    extern char **environ;
    execve(self, args, environ);
    printf("FAILED execve: %s\n", ename(errno));
    return 1;
}
