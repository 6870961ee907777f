/*
 * fota-posix: the POSIX implementations of fota's hook tables.
 *
 * net.c   - fota_net_ops_t over BSD sockets (getaddrinfo, non-blocking
 *           connect, poll-bounded send/recv).
 * flash.c - fota_flash_ops_t over a file: the image is written to OUT.part
 *           and renamed to OUT only when fota commits it.
 * sys.c   - fota_sys_ops_t's clock, sleep, random and time hooks.
 * main.c  - the log hook, the command line, progress display and
 *           fota_request().
 *
 * net.c, flash.c and sys.c form the static library fota_posix_hooks, which
 * the Lua modules (examples-c/lua) link as well.
 */
#ifndef FOTA_POSIX_PLATFORM_H
#define FOTA_POSIX_PLATFORM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fota.h"

/* ---- net.c ------------------------------------------------------------ */

/* Fills the hook table; the socket hooks need no context (ctx = NULL).
   The connect hook maps host names through the environment variable
   FOTA_HOSTS="name=addr:port,name=addr,..." before resolving them (tests
   point real-looking URLs at local servers); see net.c. */
void posix_net_ops(fota_net_ops_t *ops);

/* ---- flash.c ---------------------------------------------------------- */

/* Context of the file-backed flash: where the image goes. */
typedef struct {
    const char *path;   /* final file name (OUT); NULL: discard the bytes */
    char *part_path;    /* OUT.part: the image while it is being written */
    int fd;             /* open descriptor of OUT.part, or -1 */
    uint32_t written;   /* bytes written to OUT.part: the next write's offset */
    bool trace;         /* print "flash: init" on stderr (--verbose) */
} posix_flash_t;

/* Prepares `flash` for the image file `path` (NULL: accept and drop every
   byte); returns 0, or -1 (out of memory). */
int posix_flash_setup(posix_flash_t *flash, const char *path);
/* Frees what posix_flash_setup() allocated; closes a descriptor left open. */
void posix_flash_cleanup(posix_flash_t *flash);
/* Fills the hook table with `flash` as ctx; `read_back`: give the read hook,
   so that fota reads the image back before it commits it. */
void posix_flash_ops(fota_flash_ops_t *ops, posix_flash_t *flash, bool read_back);

/* ---- sys.c ------------------------------------------------------------ */

/* The system hooks (ctx unused): monotonic milliseconds, sleep, random bytes
   (getrandom/getentropy), seconds since 1970. */
uint32_t posix_sys_now_ms(void *ctx);
void posix_sys_sleep_ms(void *ctx, uint32_t ms);
int32_t posix_sys_random(void *ctx, uint8_t *buf, size_t len);
uint64_t posix_sys_unix_time(void *ctx);

#endif /* FOTA_POSIX_PLATFORM_H */
