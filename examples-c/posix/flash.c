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
 *
 * With --state FILE, fota's resume record lives in FILE.0 and FILE.1 (each
 * written to a temporary file, fsync'd and renamed over the old one, then
 * the directory fsync'd), and reopen() keeps OUT.part after a kill: the next
 * run continues the download where the file ends.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <signal.h>
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
    flash->state_path = NULL;
    flash->state_saves = 0;
    flash->crash_point[0] = '\0';
    flash->crash_n = 0;
    flash->dones = flash->ends = 0;
    const char *crash = getenv("FOTA_POSIX_CRASH");
    const char *colon = crash != NULL ? strchr(crash, ':') : NULL;
    if (colon != NULL && (size_t)(colon - crash) < sizeof flash->crash_point) {
        memcpy(flash->crash_point, crash, (size_t)(colon - crash));
        flash->crash_point[colon - crash] = '\0';
        flash->crash_n = strtoul(colon + 1, NULL, 10);
    }
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

void posix_crash_check(posix_flash_t *flash, const char *point, unsigned long count)
{
    if (flash->crash_n != 0 && count >= flash->crash_n && strcmp(flash->crash_point, point) == 0) {
        fprintf(stderr, "crash: SIGKILL at %s %lu (received %llu bytes)\n", point, count,
                (unsigned long long)posix_net_received);
        raise(SIGKILL);
    }
}

/* Whether the test-only power loss is due at this `point`, `count` being
   the image bytes written (or done/end calls); the hook then does half of
   its work first. */
static bool crash_due(const posix_flash_t *flash, const char *point, unsigned long count)
{
    return flash->crash_n != 0 && count >= flash->crash_n && strcmp(flash->crash_point, point) == 0;
}

/* Writes all of `len` bytes at `at`; 0 ok, -1 failed. */
static int pwrite_all(int fd, const uint8_t *data, size_t len, off_t at)
{
    while (len > 0) {
        ssize_t n = pwrite(fd, data, len, at);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return -1;
        }
        data += n;
        len -= (size_t)n;
        at += n;
    }
    return 0;
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
    if (crash_due(flash, "write", offset)) {
        /* A kill in the middle of a write: half of it reaches the file. */
        (void)pwrite_all(flash->fd, data, len / 2, (off_t)offset);
        posix_crash_check(flash, "write", offset);
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
    posix_crash_check(flash, "done", ++flash->dones);
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
    if (commit) {
        posix_crash_check(flash, "end", ++flash->ends);
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

/*
 * reopen hook (optional, with the state hooks).
 * Contract: takes up the image an earlier request left instead of init:
 * keeps the first bytes that are intact (at least `offset` when they are),
 * makes the rest writable again; returns the bytes kept (a multiple of
 * write_granularity below image_len), 0 for none (fota then calls init),
 * < 0 failed. Never claims bytes that end() discarded or committed.
 *
 * Here: OUT.part holds exactly the bytes whose writes returned (each write
 * goes to the file at once, and end() deletes or renames it), so its length
 * is what is kept, up to image_len - 1; the file is cut there. After a kill
 * that is exact (the page cache survives the process); after a real power
 * loss a file system may keep a length whose data never reached the disk,
 * which only a digest check (--sha256, --image-key) catches.
 */
static int32_t flash_reopen(void *ctx, const fota_storage_t *storage, uint32_t image_len,
                            uint32_t offset)
{
    posix_flash_t *flash = ctx;
    (void)storage;
    if (flash->fd >= 0) { /* left open by a request that kept its record */
        close(flash->fd);
    }
    flash->fd = open(flash->part_path, O_RDWR);
    if (flash->fd < 0) {
        return errno == ENOENT ? 0 : -1;
    }
    (void)fcntl(flash->fd, F_SETFD, FD_CLOEXEC);
    struct stat st;
    if (fstat(flash->fd, &st) != 0 || image_len == 0) {
        return -1;
    }
    uint64_t kept = (uint64_t)st.st_size;
    kept = kept < image_len ? kept : image_len - 1u;
    if (ftruncate(flash->fd, (off_t)kept) != 0 || lseek(flash->fd, (off_t)kept, SEEK_SET) < 0) {
        return -1;
    }
    flash->written = (uint32_t)kept;
    if (flash->trace) {
        fprintf(stderr, "flash: reopen (%lu bytes, record at %lu, kept %lu)\n",
                (unsigned long)image_len, (unsigned long)offset, (unsigned long)kept);
    }
    return (int32_t)kept;
}

/* FILE.<slot> (and FILE.<slot>.tmp with `tmp`) into `out`. */
static int slot_path(const posix_flash_t *flash, uint32_t slot, bool tmp, char *out, size_t size)
{
    int n = snprintf(out, size, "%s.%lu%s", flash->state_path, (unsigned long)slot, tmp ? ".tmp" : "");
    return n > 0 && (size_t)n < size && slot < 2 ? 0 : -1;
}

/*
 * state_load hook (optional, with reopen).
 * Contract: copies state slot `slot` (0 or 1) into `buf`; returns the bytes
 * copied, 0 for an empty slot, < 0 failed. fota checks the record's CRC.
 *
 * Here: reads FILE.<slot>; a missing file is an empty slot.
 */
static int32_t flash_state_load(void *ctx, uint32_t slot, uint8_t *buf, size_t len)
{
    posix_flash_t *flash = ctx;
    char path[4096];
    if (slot_path(flash, slot, false, path, sizeof path) != 0) {
        return -1;
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return errno == ENOENT ? 0 : -1;
    }
    size_t got = 0;
    while (got < len) {
        ssize_t n = read(fd, buf + got, len - got);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            break;
        }
        got += (size_t)n;
    }
    close(fd);
    return (int32_t)got;
}

/*
 * state_save hook (optional, with reopen).
 * Contract: replaces slot `slot` with `len` bytes; durable when it returns
 * >= 0; a save cut short must not harm the other slot.
 *
 * Here: FILE.<slot>.tmp is written and fsync'd, renamed over FILE.<slot>,
 * and the directory fsync'd: a kill at any moment leaves the old or the new
 * slot whole.
 */
static int32_t flash_state_save(void *ctx, uint32_t slot, const uint8_t *buf, size_t len)
{
    posix_flash_t *flash = ctx;
    char path[4096], tmp[4096];
    if (slot_path(flash, slot, false, path, sizeof path) != 0 ||
        slot_path(flash, slot, true, tmp, sizeof tmp) != 0) {
        return -1;
    }
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        return -1;
    }
    unsigned long n = flash->state_saves + 1;
    if (crash_due(flash, "save", flash->written)) {
        (void)pwrite_all(fd, buf, len / 2, 0); /* killed in the middle of the save */
        posix_crash_check(flash, "save", flash->written);
    }
    int ok = pwrite_all(fd, buf, len, 0) == 0 && fsync(fd) == 0;
    ok = close(fd) == 0 && ok;
    if (!ok || rename(tmp, path) != 0) {
        (void)unlink(tmp);
        return -1;
    }
    posix_crash_check(flash, "rename", flash->written);
    sync_parent_dir(path);
    flash->state_saves = n;
    if (flash->trace) {
        fprintf(stderr, "flash: state save %lu (slot %lu, %lu bytes)\n", n, (unsigned long)slot,
                (unsigned long)len);
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
    bool state = flash->state_path != NULL && flash->path != NULL;
    ops->reopen = state ? flash_reopen : NULL;
    ops->state_load = state ? flash_state_load : NULL;
    ops->state_save = state ? flash_state_save : NULL;
}
