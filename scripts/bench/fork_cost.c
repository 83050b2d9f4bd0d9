/* fork + _exit + waitpid, N times, with a listener and a connected pair
 * open (three sockets the child shares): what sharing sockets across fork
 * costs (scripts/bench/fork_cost.sh). With "exec", each child execs this
 * program again, which exits at once (the three sockets survive the exec).
 * usage: fork_cost IP PORT N [exec] */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
static double now_s(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec / 1e9; }
int main(int argc, char **argv) {
    if (argc == 2 && strcmp(argv[1], "--exit") == 0) return 0;
    int n = atoi(argv[3]);
    int exec_too = argc > 4 && strcmp(argv[4], "exec") == 0;
    int l = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[2]))};
    inet_pton(AF_INET, argv[1], &a.sin_addr);
    int one = 1; setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(l, (struct sockaddr *)&a, sizeof a) || listen(l, 16)) { perror("listen"); return 1; }
    int c = socket(AF_INET, SOCK_STREAM, 0);
    if (connect(c, (struct sockaddr *)&a, sizeof a)) { perror("connect"); return 1; }
    int s = accept(l, NULL, NULL);
    double t0 = now_s();
    for (int i = 0; i < n; i++) {
        pid_t p = fork();
        if (p == 0) {
            if (exec_too) execl("/proc/self/exe", argv[0], "--exit", (char *)NULL);
            _exit(0);
        }
        waitpid(p, NULL, 0);
    }
    double dt = now_s() - t0;
    printf("%.1f us per fork+%sexit+wait with 3 sockets open\n", dt / n * 1e6, exec_too ? "exec+" : "");
    close(s); close(c); close(l);
    return 0;
}
