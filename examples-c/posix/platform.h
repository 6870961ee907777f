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
/* Bytes the recv hook returned so far (heads and bodies): what was fetched. */
extern uint64_t posix_net_received;
/* Most bytes one recv hook call returns (0: as many as fota asks for);
   fota-posix --recv-max, e.g. to behave like a device's small TCP window. */
extern size_t posix_net_recv_max;

/* ---- flash.c ---------------------------------------------------------- */

/* Context of the file-backed flash: where the image goes. */
typedef struct {
    const char *path;   /* final file name (OUT); NULL: discard the bytes */
    char *part_path;    /* OUT.part: the image while it is being written */
    int fd;             /* open descriptor of OUT.part, or -1 */
    uint32_t written;   /* bytes written to OUT.part: the next write's offset */
    bool trace;         /* print "flash: init" on stderr (--verbose) */
    const char *state_path; /* --state FILE: slots FILE.0 / FILE.1; NULL: none */
    unsigned long state_saves; /* state_save calls that succeeded */
    /* Test-only power loss (env FOTA_POSIX_CRASH=POINT:N): SIGKILL at the
       first POINT once N image bytes were written: byte (after a write),
       write (half of it written), save (half of the slot's temporary file
       written), rename (a save renamed, its directory not yet fsync'd); or
       at the N-th done() or end(true). */
    char crash_point[16];
    unsigned long crash_n;
    unsigned long dones, ends;
} posix_flash_t;

/* Prepares `flash` for the image file `path` (NULL: accept and drop every
   byte); returns 0, or -1 (out of memory). */
int posix_flash_setup(posix_flash_t *flash, const char *path);
/* Frees what posix_flash_setup() allocated; closes a descriptor left open. */
void posix_flash_cleanup(posix_flash_t *flash);
/* Fills the hook table with `flash` as ctx; `read_back`: give the read hook,
   so that fota reads the image back before it commits it. With
   flash->state_path set, also the state hooks and reopen (a download
   continues after the process is killed). */
void posix_flash_ops(fota_flash_ops_t *ops, posix_flash_t *flash, bool read_back);
/* The test-only power loss: SIGKILL now if `point` is the configured one
   and `count` (image bytes written, or calls of done/end) reached its N. */
void posix_crash_check(posix_flash_t *flash, const char *point, unsigned long count);

/* ---- sys.c ------------------------------------------------------------ */

/* The system hooks (ctx unused): monotonic milliseconds, sleep, random bytes
   (getrandom/getentropy), seconds since 1970. */
uint32_t posix_sys_now_ms(void *ctx);
void posix_sys_sleep_ms(void *ctx, uint32_t ms);
int32_t posix_sys_random(void *ctx, uint8_t *buf, size_t len);
uint64_t posix_sys_unix_time(void *ctx);

#endif /* FOTA_POSIX_PLATFORM_H */
