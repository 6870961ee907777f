/*
 * fota_flash_ops_t over a file: a host stand-in for the update area.
 *
 * The image goes to OUT.part while it downloads; end(commit = true) renames
 * it to OUT atomically, end(commit = false) deletes it. So OUT only ever
 * appears complete and verified, and a failed request leaves neither OUT
 * (unless it existed before, untouched) nor OUT.part behind.
 *
 * The file path comes from the program and lives in the hook ctx
 * (posix_flash_t); fota_storage_t.path would carry it just as well.
 *
 * Without a path (fota-posix --discard) the hooks accept every byte and
 * keep none: the benchmarks use it to measure the client without a disk.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "platform.h"

int posix_flash_setup(posix_flash_t *flash, const char *path)
{
    static const char suffix[] = ".part";
    flash->path = path;
    flash->fd = -1;
    flash->part_path = NULL;
    flash->written = 0;
    flash->trace = false;
    if (path == NULL) {
        return 0;
    }
    size_t n = strlen(path);
    flash->part_path = malloc(n + sizeof suffix);
    if (flash->part_path == NULL) {
        return -1;
    }
    memcpy(flash->part_path, path, n);
    memcpy(flash->part_path + n, suffix, sizeof suffix);
    return 0;
}

void posix_flash_cleanup(posix_flash_t *flash)
{
    if (flash->fd >= 0) {
        close(flash->fd);
        flash->fd = -1;
    }
    free(flash->part_path);
    flash->part_path = NULL;
}

/* Makes a finished rename durable: fsync the directory that holds `path`. */
static void sync_parent_dir(const char *path)
{
    char *copy = strdup(path);
    if (copy == NULL) {
        return;
    }
    int dfd = open(dirname(copy), O_RDONLY);
    if (dfd >= 0) {
        (void)fsync(dfd);
        close(dfd);
    }
    free(copy);
}

/*
 * init hook.
 * Contract: prepares the area for an image of `image_len` bytes (0: length
 * not known in advance); called once a response head announced an image.
 * Returns >= 0 ok, < 0 failed (FOTA_ERR_FLASH).
 *
 * Here: creates OUT.part, truncating what an earlier run left there.
 * fota has already refused an image larger than storage->max_len.
 */
static int32_t flash_init(void *ctx, const fota_storage_t *storage, uint32_t image_len)
{
    posix_flash_t *flash = ctx;
    (void)storage;
    if (flash->trace) {
        fprintf(stderr, "flash: init (%lu bytes)\n", (unsigned long)image_len);
    }
    if (flash->path == NULL) {
        return 0;
    }
    if (flash->fd >= 0) { /* defensive: init without end */
        close(flash->fd);
    }
    flash->fd = open(flash->part_path, O_RDWR | O_CREAT | O_TRUNC, 0644); /* read: read-back */
    if (flash->fd < 0) {
        return -1;
    }
    flash->written = 0;
    (void)fcntl(flash->fd, F_SETFD, FD_CLOEXEC);
    return 0;
}

/*
 * write hook.
 * Contract: writes `len` bytes at `offset` from the start of the image
 * (writes come in order without gaps; write_granularity is 0, so any size).
 * Returns >= 0 ok, < 0 failed (FOTA_ERR_FLASH).
 *
 * Here: one write() of the bytes straight from fota's receive buffer,
 * without a copy: fota hands over what one receive brought (up to
 * FOTA_RX_BUF, 64 KiB in the host build), so the write()s are as large as
 * the receives, as in curl -o.
 */
static int32_t flash_write(void *ctx, uint32_t offset, const uint8_t *data, size_t len)
{
    posix_flash_t *flash = ctx;
    if (flash->path == NULL) {
        return 0;
    }
    if (flash->fd < 0 || offset != flash->written) {
        return -1; /* fota writes in order, without gaps */
    }
    while (len > 0) {
        ssize_t n = write(flash->fd, data, len);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return -1;
        }
        data += n;
        len -= (size_t)n;
        flash->written += (uint32_t)n;
    }
    return 0;
}

/*
 * done hook.
 * Contract: called after the last write until it returns 0; > 0 means still
 * busy (fota sleeps FOTA_DONE_POLL_MS and calls again), 0 finished, < 0
 * failed (FOTA_ERR_FLASH).
 *
 * Here: fsync() makes the bytes durable before fota may commit them.
 */
static int32_t flash_done(void *ctx)
{
    posix_flash_t *flash = ctx;
    if (flash->path == NULL) {
        return 0;
    }
    if (flash->fd < 0) {
        return -1;
    }
    return fsync(flash->fd) == 0 ? 0 : -1;
}

/*
 * end hook.
 * Contract: called exactly once after every successful init. commit = true:
 * every byte arrived and every check passed, mark the image for the
 * bootloader; false: discard it. Returns >= 0 ok, < 0 failed.
 *
 * Here: commit renames OUT.part to OUT (atomic replace); discard deletes
 * OUT.part.
 */
static int32_t flash_end(void *ctx, bool commit)
{
    posix_flash_t *flash = ctx;
    int32_t ret = 0;
    if (flash->path == NULL) {
        return 0;
    }
    if (flash->fd >= 0) {
        if (close(flash->fd) != 0 && commit) {
            ret = -1;
        }
        flash->fd = -1;
    }
    if (commit && ret == 0) {
        if (rename(flash->part_path, flash->path) != 0) {
            ret = -1;
        } else {
            sync_parent_dir(flash->path);
        }
    }
    if (!commit || ret != 0) {
        (void)unlink(flash->part_path);
    }
    return ret;
}

/*
 * read hook (optional).
 * Contract: copies `len` bytes of the image at `offset` into `buf`; fota
 * calls it after done(), before end(true), to read the whole image back and
 * compare its digest with what it wrote. Returns >= 0 ok, < 0 failed.
 *
 * Here: pread from OUT.part.
 */
static int32_t flash_read(void *ctx, uint32_t offset, uint8_t *buf, size_t len)
{
    posix_flash_t *flash = ctx;
    if (flash->fd < 0) {
        return -1;
    }
    off_t at = (off_t)offset;
    while (len > 0) {
        ssize_t n = pread(flash->fd, buf, len, at);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return -1;
        }
        buf += n;
        len -= (size_t)n;
        at += n;
    }
    return 0;
}

void posix_flash_ops(fota_flash_ops_t *ops, posix_flash_t *flash, bool read_back)
{
    /* Nothing to read back when the bytes are dropped (--discard). */
    ops->read = read_back && flash->path != NULL ? flash_read : NULL;
    ops->ctx = flash;
    ops->init = flash_init;
    ops->write = flash_write;
    ops->done = flash_done;
    ops->end = flash_end;
    ops->write_granularity = 0; /* a file takes writes of any size */
}
