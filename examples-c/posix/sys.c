/*
 * fota_sys_ops_t hooks for POSIX hosts: monotonic clock, sleep, random
 * bytes, wall-clock time. Shared by fota-posix (main.c) and the Lua modules
 * (examples-c/lua); each program adds its own log hook.
 */
#define _POSIX_C_SOURCE 200809L
#if defined(__APPLE__)
#define _DARWIN_C_SOURCE /* getentropy */
#endif

#include <errno.h>
#include <time.h>
#include <unistd.h>

#if defined(__linux__) || defined(__APPLE__)
#include <sys/random.h> /* getrandom (Linux), getentropy (macOS) */
#endif

#include "platform.h"

/*
 * now_ms hook.
 * Contract: milliseconds from a monotonic clock; may wrap around (fota only
 * uses differences).
 */
uint32_t posix_sys_now_ms(void *ctx)
{
    (void)ctx;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint32_t)((uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u);
}

/*
 * sleep_ms hook.
 * Contract: blocks the calling task for `ms` milliseconds. A signal does not
 * cut the sleep short (nanosleep resumes with the remaining time).
 */
void posix_sys_sleep_ms(void *ctx, uint32_t ms)
{
    (void)ctx;
    struct timespec req = { .tv_sec = ms / 1000u, .tv_nsec = (long)(ms % 1000u) * 1000000L };
    struct timespec rem;
    while (nanosleep(&req, &rem) != 0 && errno == EINTR) {
        req = rem;
    }
}

/*
 * random hook.
 * Contract: fills `buf` with `len` bytes from a cryptographic source;
 * returns 0 ok, < 0 failed. Needed for https (TLS) only.
 */
int32_t posix_sys_random(void *ctx, uint8_t *buf, size_t len)
{
    (void)ctx;
    while (len > 0) {
#if defined(__linux__)
        ssize_t n = getrandom(buf, len, 0);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return -1;
        }
        buf += n;
        len -= (size_t)n;
#else
        size_t n = len > 256 ? 256 : len; /* getentropy's limit */
        if (getentropy(buf, n) != 0) {
            return -1;
        }
        buf += n;
        len -= n;
#endif
    }
    return 0;
}

/*
 * unix_time hook.
 * Contract: seconds since 1970-01-01 UTC, or 0 when the date is not known.
 * fota checks certificate validity periods with it (https only); with 0 or
 * no hook they are not checked. A host has a real-time clock; a device
 * would return 0 until it has network time (SNTP, the modem's NITZ).
 */
uint64_t posix_sys_unix_time(void *ctx)
{
    (void)ctx;
    time_t now = time(NULL);
    return now == (time_t)-1 || now < 0 ? 0 : (uint64_t)now;
}
