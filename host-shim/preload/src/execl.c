/* execl, execlp and execle for libtoe_preload.so: variadic, so written in C
 * (stable Rust cannot define C-variadic functions). Each collects its
 * arguments into an argv array and calls the library's execv, execvp or
 * execve (exec.rs), which carry offloaded sockets across the exec. glibc's
 * own execl* call its internal execve, which LD_PRELOAD cannot reach. The
 * exported execl, execlp and execle are exec.rs's naked jumps to these. */
#include <stdarg.h>
#include <stddef.h>
#include <unistd.h>

#define COLLECT(first, ap, argv)                                   \
    size_t n = 1;                                                  \
    {                                                              \
        va_list c;                                                 \
        va_copy(c, ap);                                            \
        while (va_arg(c, const char *) != NULL)                    \
            n++;                                                   \
        va_end(c);                                                 \
    }                                                              \
    const char *argv[n + 1];                                       \
    argv[0] = first;                                               \
    for (size_t i = 1; i <= n; i++)                                \
        argv[i] = va_arg(ap, const char *);

int toe_preload_execl(const char *path, const char *arg, ...)
{
    va_list ap;
    va_start(ap, arg);
    COLLECT(arg, ap, argv);
    va_end(ap);
    return execv(path, (char *const *)argv);
}

int toe_preload_execlp(const char *file, const char *arg, ...)
{
    va_list ap;
    va_start(ap, arg);
    COLLECT(arg, ap, argv);
    va_end(ap);
    return execvp(file, (char *const *)argv);
}

int toe_preload_execle(const char *path, const char *arg, ...)
{
    va_list ap;
    va_start(ap, arg);
    COLLECT(arg, ap, argv);
    char *const *envp = va_arg(ap, char *const *);
    va_end(ap);
    return execve(path, (char *const *)argv, envp);
}
