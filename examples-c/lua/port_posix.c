/*
 * The host port of the Lua modules (fotalua_port.h): fota's hooks from
 * examples-c/posix (sockets with FOTA_HOSTS name mapping, file-backed flash,
 * clock), a pthread per request (joined before the next one starts and
 * when the Lua state closes), and a condition variable that poll(ms)
 * waits on.
 *
 * The image goes to the file FOTA_OUT (default update.bin), or to the path
 * given as libfota's storge_location / libfota2's opts.storage; written to
 * FILE.part, read back by fota, and renamed when fota commits it (flash.c). fota's log lines and
 * what the flash init hook receives go to stderr as `fota <level>: ...`.
 */
#define _POSIX_C_SOURCE 200809L

#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fotalua_port.h"
#include "platform.h"

/* ---- flash: flash.c's file, opened per image ------------------------------- */

static posix_flash_t flash;
static fota_flash_ops_t file_ops; /* flash.c's hooks for the current file, ctx = &flash */

static void log_line(void *ctx, int32_t level, const char *msg, size_t len);

/*
 * init hook: the file is storage->path when the script gave one, else
 * FOTA_OUT; then flash.c's init. The storage description is logged, which
 * is how the tests see storge_location, len and param1 arrive.
 */
static int32_t lua_flash_init(void *ctx, const fota_storage_t *storage, uint32_t image_len)
{
    (void)ctx;
    const char *out = getenv("FOTA_OUT");
    const char *path = storage->path != NULL ? storage->path : (out != NULL && *out != '\0' ? out : "update.bin");
    char line[600];
    int n = snprintf(line, sizeof line, "flash init: address=0x%lx max_len=%lu param1=%s path=%s image_len=%lu",
                     (unsigned long)storage->address, (unsigned long)storage->max_len,
                     storage->param1 != NULL ? "set" : "none", path, (unsigned long)image_len);
    log_line(NULL, FOTA_LOG_INFO, line, n < 0 ? 0 : (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
    if (posix_flash_setup(&flash, path) != 0) {
        return -1;
    }
    posix_flash_ops(&file_ops, &flash, true); /* with the read hook: fota reads the image back */
    int32_t r = file_ops.init(&flash, storage, image_len);
    if (r < 0) {
        posix_flash_cleanup(&flash);
    }
    return r;
}

static int32_t lua_flash_write(void *ctx, uint32_t offset, const uint8_t *data, size_t len)
{
    (void)ctx;
    return file_ops.write(&flash, offset, data, len);
}

static int32_t lua_flash_done(void *ctx)
{
    (void)ctx;
    return file_ops.done(&flash);
}

static int32_t lua_flash_read(void *ctx, uint32_t offset, uint8_t *buf, size_t len)
{
    (void)ctx;
    return file_ops.read != NULL ? file_ops.read(&flash, offset, buf, len) : -1;
}

static int32_t lua_flash_end(void *ctx, bool commit)
{
    (void)ctx;
    int32_t r = file_ops.end(&flash, commit);
    posix_flash_cleanup(&flash);
    return r;
}

/* ---- log ------------------------------------------------------------------- */

/*
 * log hook.
 * Contract: one line of `len` bytes (not NUL-terminated) at `level`.
 * Here: stderr, errors to info (debug with FOTA_DEBUG set).
 */
static void log_line(void *ctx, int32_t level, const char *msg, size_t len)
{
    (void)ctx;
    static const char *const names[] = { "?", "error", "warn", "info", "debug" };
    if (level > FOTA_LOG_INFO && getenv("FOTA_DEBUG") == NULL) {
        return;
    }
    const char *name = (level >= FOTA_LOG_ERROR && level <= FOTA_LOG_DEBUG) ? names[level] : names[0];
    fprintf(stderr, "fota %s: %.*s\n", name, len > INT_MAX ? INT_MAX : (int)len, msg);
}

/* ---- fotalua_port.h --------------------------------------------------------- */

int fotalua_port_init(void)
{
    fota_platform_t platform;
    memset(&platform, 0, sizeof platform);
    posix_net_ops(&platform.net);
    platform.flash.init = lua_flash_init; /* write_granularity 0: a file takes any size */
    platform.flash.write = lua_flash_write;
    platform.flash.done = lua_flash_done;
    platform.flash.end = lua_flash_end;
    platform.flash.read = lua_flash_read;
    platform.sys.now_ms = posix_sys_now_ms;
    platform.sys.sleep_ms = posix_sys_sleep_ms;
    platform.sys.random = posix_sys_random;
    platform.sys.unix_time = posix_sys_unix_time;
    platform.sys.log = log_line;
    return fota_init(&platform) == FOTA_OK ? 0 : -1;
}

typedef struct {
    void (*fn)(void *);
    void *arg;
} start_t;

static start_t next_start; /* read by the new thread only */
static pthread_t worker_thread;
static bool worker_joinable;

static void *thread_main(void *p)
{
    start_t *s = p;
    s->fn(s->arg);
    return NULL;
}

void fotalua_port_join(void)
{
    if (worker_joinable) {
        pthread_join(worker_thread, NULL);
        worker_joinable = false;
    }
}

int fotalua_port_spawn(void (*fn)(void *arg), void *arg)
{
    fotalua_port_join(); /* the previous worker, which has finished */
    next_start.fn = fn;
    next_start.arg = arg;
    if (pthread_create(&worker_thread, NULL, thread_main, &next_start) != 0) {
        return -1;
    }
    worker_joinable = true;
    return 0;
}

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static bool notified;

void fotalua_port_notify(void)
{
    pthread_mutex_lock(&lock);
    notified = true;
    pthread_cond_signal(&cond);
    pthread_mutex_unlock(&lock);
}

void fotalua_port_wait(uint32_t ms)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += (time_t)(ms / 1000u);
    until.tv_nsec += (long)(ms % 1000u) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&lock);
    while (!notified) {
        if (pthread_cond_timedwait(&cond, &lock, &until) != 0) {
            break; /* timed out (or failed): the caller checks the state */
        }
    }
    notified = false;
    pthread_mutex_unlock(&lock);
}
