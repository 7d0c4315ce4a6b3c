/*
 * clockshift: an LD_PRELOAD library that moves a process's wall clock by an offset that can be
 * changed while it runs, for the clock-jump scenarios of bench/chaos (chaos.py compiles it with
 * `cc -shared -fPIC -O2`).
 *
 * Why not libfaketime: Debian's libfaketime 0.9.10 deadlocks at the start of the jarvis binary.
 * Its constructor looks up symbols this glibc lacks (`__ftime`, versioned `timer_settime`); the
 * failed lookup allocates its error message; the binary's allocator (jemalloc) initialises on that
 * first allocation and reads the clock, which is libfaketime's clock_gettime, which is not
 * initialised yet and looks the symbols up again: jemalloc's init lock is taken twice.
 *
 * This library calls neither dlsym nor malloc. CLOCK_REALTIME (and its coarse variant),
 * gettimeofday and time return the kernel's value plus the offset; every other clock (the
 * monotonic ones, which an NTP step does not move) is the kernel's. The offset is the signed
 * 64-bit little-endian count of nanoseconds in the first 8 bytes of the file named by
 * CHAOS_CLOCK_FILE, mapped shared, so a write to that file moves the clock of the process at
 * once (no file is read per call). Without the variable or the file the offset is 0.
 *
 * Real time comes from the raw system call, not the vDSO: slower per call (about 0.1 µs), which
 * a chaos run does not notice.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static volatile int64_t *offset_ns;
static volatile int mapped; /* 0: not tried yet, 1: tried (offset_ns set or not) */

static int64_t offset(void) {
    if (!__atomic_load_n(&mapped, __ATOMIC_ACQUIRE)) {
        const char *path = getenv("CHAOS_CLOCK_FILE");
        if (path) {
            int fd = open(path, O_RDONLY | O_CLOEXEC);
            if (fd >= 0) {
                void *p = mmap(NULL, 8, PROT_READ, MAP_SHARED, fd, 0);
                close(fd);
                if (p != MAP_FAILED) offset_ns = p;
            }
        }
        __atomic_store_n(&mapped, 1, __ATOMIC_RELEASE);
    }
    return offset_ns ? __atomic_load_n(offset_ns, __ATOMIC_RELAXED) : 0;
}

static int real_clock(clockid_t clk, struct timespec *ts) {
    return (int)syscall(SYS_clock_gettime, clk, ts);
}

static void shift(struct timespec *ts) {
    int64_t ns = (int64_t)ts->tv_sec * 1000000000LL + ts->tv_nsec + offset();
    ts->tv_sec = ns / 1000000000LL;
    ts->tv_nsec = ns % 1000000000LL;
    if (ts->tv_nsec < 0) {
        ts->tv_nsec += 1000000000LL;
        ts->tv_sec -= 1;
    }
}

int clock_gettime(clockid_t clk, struct timespec *ts) {
    int r = real_clock(clk, ts);
    if (r == 0 && (clk == CLOCK_REALTIME || clk == CLOCK_REALTIME_COARSE)) shift(ts);
    return r;
}

/* glibc declares `tv` nonnull, but Linux takes NULL: keep the check. */
#pragma GCC diagnostic ignored "-Wnonnull-compare"
int gettimeofday(struct timeval *restrict tv, void *restrict tz) {
    (void)tz;
    struct timespec ts;
    int r = clock_gettime(CLOCK_REALTIME, &ts);
    if (r == 0 && tv) {
        tv->tv_sec = ts.tv_sec;
        tv->tv_usec = ts.tv_nsec / 1000;
    }
    return r;
}

time_t time(time_t *t) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    if (t) *t = ts.tv_sec;
    return ts.tv_sec;
}
