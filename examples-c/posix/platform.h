/*
 * fota-posix: the POSIX implementations of fota's hook tables.
 *
 * net.c   - fota_net_ops_t over BSD sockets (getaddrinfo, non-blocking
 *           connect, poll-bounded send/recv).
 * flash.c - fota_flash_ops_t over a file: the image is written to OUT.part
 *           and renamed to OUT only when fota commits it.
 * main.c  - fota_sys_ops_t, the command line, progress display and
 *           fota_request().
 */
#ifndef FOTA_POSIX_PLATFORM_H
#define FOTA_POSIX_PLATFORM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fota.h"

/* ---- net.c ------------------------------------------------------------ */

/* Fills the hook table; the socket hooks need no context (ctx = NULL). */
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

#endif /* FOTA_POSIX_PLATFORM_H */
