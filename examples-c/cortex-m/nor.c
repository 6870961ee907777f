/* Flash hooks over a modelled NOR flash: 4 KiB sectors erased to 0xFF, 256-byte
 * pages. Programming can only turn 1 bits into 0 bits, so a byte that is not
 * erased cannot be written: `write` fails on such a byte, as it does outside
 * the area or when the library breaks the page-alignment contract. The
 * optional `read` hook reads the area back (memory-mapped NOR: a copy), so
 * fota can compare what flash holds with what it wrote before end(true). */
#include <string.h>

#include "fw.h"

__attribute__((section(".update_area"), aligned(NOR_SECTOR)))
static uint8_t nor_mem[NOR_SIZE];

static struct nor_stats stats;
static uint32_t busy_polls;      /* done() answers "busy" this many more times */
static bool short_write_seen;    /* a write of less than a page: must be the last */
static uint32_t stuck_at = NOR_NO_FAULT;  /* nor_stuck_bit() */

static void violation(const char *why) {
    if (stats.error[0] == '\0') {
        stats.error = why;
    }
}

void nor_reset(void) {
    /* The previous firmware's bytes: nothing is erased until init() erases it. */
    memset(nor_mem, 0x00, sizeof nor_mem);
    memset(&stats, 0, sizeof stats);
    stats.error = "";
    busy_polls = 0;
    short_write_seen = false;
    stuck_at = NOR_NO_FAULT;
}

void nor_stuck_bit(uint32_t offset) { stuck_at = offset; }

const struct nor_stats *nor_stats(void) { return &stats; }
const uint8_t *nor_area(void) { return nor_mem; }
uint32_t nor_address(void) { return (uint32_t)(uintptr_t)nor_mem; }

static int32_t erase_for(const fota_storage_t *storage, uint32_t image_len) {
    stats.inits++;
    if (storage == NULL || storage->address != nor_address() || storage->max_len != NOR_SIZE) {
        violation("init: wrong storage description");
        return -1;
    }
    if (image_len > NOR_SIZE) {
        violation("init: image larger than the area (the library should have refused it)");
        return -1;
    }
    /* Erase what the image needs; all of it when the length is unknown. */
    uint32_t len = image_len != 0 ? image_len : NOR_SIZE;
    uint32_t sectors = (len + NOR_SECTOR - 1) / NOR_SECTOR;
    memset(nor_mem, 0xFF, sectors * NOR_SECTOR);
    stats.erased_sectors += sectors;
    stats.image_len = image_len;
    short_write_seen = false;
    return 0;
}

static int32_t program(uint32_t offset, const uint8_t *data, size_t len) {
    stats.writes++;
    if (data == NULL || len == 0) {
        violation("write: empty write");
        return -1;
    }
    if (offset >= NOR_SIZE || len > NOR_SIZE - offset) {
        violation("write: outside the area");
        return -1;
    }
    if (offset % NOR_PAGE != 0 || short_write_seen) {
        violation("write: not page aligned (granularity 256)");
        return -1;
    }
    if (len % NOR_PAGE != 0) {
        short_write_seen = true;  /* only the image's last write may be short */
    }
    /* Page by page, as a page-program command would. */
    for (size_t done = 0; done < len;) {
        size_t n = len - done < NOR_PAGE ? len - done : NOR_PAGE;
        uint8_t *page = nor_mem + offset + done;
        for (size_t i = 0; i < n; i++) {
            if (page[i] != 0xFF) {
                violation("write: programming a byte that is not erased");
                return -1;
            }
        }
        for (size_t i = 0; i < n; i++) {
            uint8_t v = data[done + i];
            if (offset + done + i == stuck_at) {
                v |= (uint8_t)(~v & (v + 1u));  /* its lowest 0 bit stays 1 */
            }
            page[i] &= v;  /* NOR: 1 -> 0 only */
        }
        done += n;
        stats.bytes_programmed += (uint32_t)n;
    }
    busy_polls = 2;
    return 0;
}

static int32_t read_back(uint32_t offset, uint8_t *buf, size_t len) {
    if (buf == NULL || len == 0) {
        violation("read: empty read");
        return -1;
    }
    if (stats.inits == 0 || stats.ends == stats.inits) {
        violation("read: no image open (between init and end)");
        return -1;
    }
    if (offset >= NOR_SIZE || len > NOR_SIZE - offset) {
        violation("read: outside the area");
        return -1;
    }
    memcpy(buf, nor_mem + offset, len);
    stats.bytes_read += (uint32_t)len;
    return 0;
}

static int32_t nor_done(void *ctx) {
    (void)ctx;
    /* A few instructions: counted as fota's. */
    if (busy_polls > 0) {
        busy_polls--;
        return 1;  /* still busy: the library sleeps and polls again */
    }
    return 0;
}

static int32_t nor_end(void *ctx, bool commit) {
    (void)ctx;
    stats.ends++;
    if (stats.ends > stats.inits) {
        violation("end: without init");
    }
    if (commit) {
        stats.commits++;
    }
    return 0;
}

/* The hooks: their time counts as the platform's, not fota's (clock.c). */
static int32_t nor_init(void *ctx, const fota_storage_t *storage, uint32_t image_len) {
    (void)ctx;
    hook_enter();
    int32_t r = erase_for(storage, image_len);
    hook_leave();
    return r;
}

static int32_t nor_write(void *ctx, uint32_t offset, const uint8_t *data, size_t len) {
    (void)ctx;
    hook_enter();
    int32_t r = program(offset, data, len);
    hook_leave();
    return r;
}

static int32_t nor_read(void *ctx, uint32_t offset, uint8_t *buf, size_t len) {
    (void)ctx;
    hook_enter();
    int32_t r = read_back(offset, buf, len);
    hook_leave();
    return r;
}

fota_flash_ops_t nor_flash_ops(bool with_read) {
    fota_flash_ops_t ops = {
        .ctx = NULL,
        .init = nor_init,
        .write = nor_write,
        .done = nor_done,
        .end = nor_end,
        .write_granularity = NOR_PAGE,
        .read = with_read ? nor_read : NULL,
    };
    return ops;
}
