/* Flash hooks over a modelled NOR flash: 4 KiB sectors erased to 0xFF, 256-byte
 * pages. Programming can only turn 1 bits into 0 bits, so a byte that is not
 * erased cannot be written: `write` fails on such a byte, as it does outside
 * the area or when the library breaks the page-alignment contract. The
 * optional `read` hook reads the area back (memory-mapped NOR: a copy), so
 * fota can compare what flash holds with what it wrote before end(true).
 *
 * The optional resume hooks (`reopen`, `state_load`, `state_save`) use two
 * more sectors of the same chip for fota's resume records, erased and
 * programmed by the same rules. The chip sits at NOR_CHIP_ADDRESS so that
 * the host can carry it from one QEMU run to the next (tests/bridge.py:
 * loaded by QEMU at start, saved when the bridge cuts the power). */
#include <string.h>

#include "fw.h"

/* The chip: the update area, then one sector per state slot (the slots
 * must not share an erase unit). */
struct nor_chip {
    uint8_t image[NOR_SIZE];
    uint8_t state[2][NOR_SECTOR];
};

/* At NOR_CHIP_ADDRESS (mps2-an386.ld), like a memory-mapped NOR device. */
extern struct nor_chip nor_chip;

static struct nor_stats stats;
static uint32_t busy_polls;      /* done() answers "busy" this many more times */
static bool short_write_seen;    /* a write of less than a page: must be the last */
static uint32_t stuck_at = NOR_NO_FAULT;  /* nor_stuck_bit() */

static void violation(const char *why) {
    if (stats.error[0] == '\0') {
        stats.error = why;
    }
}

void nor_reset(bool kept) {
    if (!kept) {
        /* The previous firmware's bytes: nothing is erased until init()
         * erases it; the state sectors of a new device are erased. */
        memset(nor_chip.image, 0x00, sizeof nor_chip.image);
        memset(nor_chip.state, 0xFF, sizeof nor_chip.state);
    }
    memset(&stats, 0, sizeof stats);
    stats.error = "";
    busy_polls = 0;
    short_write_seen = false;
    stuck_at = NOR_NO_FAULT;
}

void nor_stuck_bit(uint32_t offset) { stuck_at = offset; }

const struct nor_stats *nor_stats(void) { return &stats; }
const uint8_t *nor_area(void) { return nor_chip.image; }
uint32_t nor_address(void) { return (uint32_t)(uintptr_t)nor_chip.image; }
uint32_t nor_chip_address(void) { return (uint32_t)(uintptr_t)&nor_chip; }

static bool storage_ok(const fota_storage_t *storage) {
    return storage != NULL && storage->address == nor_address() && storage->max_len == NOR_SIZE;
}

/* Erases the sectors from `from` (sector-aligned) up to the end of an image of `len` bytes. */
static void erase_range(uint32_t from, uint32_t len) {
    uint32_t end = (len + NOR_SECTOR - 1) / NOR_SECTOR * NOR_SECTOR;
    memset(nor_chip.image + from, 0xFF, end - from);
    stats.erased_sectors += (end - from) / NOR_SECTOR;
}

static int32_t erase_for(const fota_storage_t *storage, uint32_t image_len) {
    stats.inits++;
    if (!storage_ok(storage)) {
        violation("init: wrong storage description");
        return -1;
    }
    if (image_len > NOR_SIZE) {
        violation("init: image larger than the area (the library should have refused it)");
        return -1;
    }
    /* Erase what the image needs; all of it when the length is unknown. */
    erase_range(0, image_len != 0 ? image_len : NOR_SIZE);
    stats.image_len = image_len;
    short_write_seen = false;
    return 0;
}

/* Takes up the image a run before the power cut left: a NOR sector cannot be
 * erased in part, and bytes programmed after the record's offset may be torn
 * (a page program cut short), so the whole sectors below `offset` are kept
 * and everything from there to the image's end is erased again. */
static int32_t reopen_kept(const fota_storage_t *storage, uint32_t image_len, uint32_t offset) {
    if (!storage_ok(storage) || image_len == 0 || image_len > NOR_SIZE || offset >= image_len) {
        violation("reopen: wrong storage, length or offset");
        return -1;
    }
    uint32_t kept = offset - offset % NOR_SECTOR;
    if (kept == 0) {
        return 0;  /* nothing kept: fota calls init, no end for this call */
    }
    stats.reopens++;
    erase_range(kept, image_len);
    stats.image_len = image_len;
    short_write_seen = false;
    return (int32_t)kept;
}

/* A state slot: empty while its first bytes are erased; the record's CRC
 * (fota's) tells a torn save from a whole one. */
static int32_t slot_load(uint32_t slot, uint8_t *buf, size_t len) {
    if (slot > 1 || buf == NULL) {
        violation("state_load: wrong slot or buffer");
        return -1;
    }
    static const uint8_t erased[4] = {0xFF, 0xFF, 0xFF, 0xFF};
    if (memcmp(nor_chip.state[slot], erased, sizeof erased) == 0) {
        return 0;
    }
    size_t n = len < NOR_SECTOR ? len : NOR_SECTOR;
    memcpy(buf, nor_chip.state[slot], n);
    return (int32_t)n;
}

/* Erase the slot's sector, then program the record (1 -> 0 only). */
static int32_t slot_save(uint32_t slot, const uint8_t *buf, size_t len) {
    if (slot > 1 || buf == NULL || len == 0 || len > NOR_SECTOR) {
        violation("state_save: wrong slot or length");
        return -1;
    }
    memset(nor_chip.state[slot], 0xFF, NOR_SECTOR);
    for (size_t i = 0; i < len; i++) {
        nor_chip.state[slot][i] &= buf[i];
    }
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
        uint8_t *page = nor_chip.image + offset + done;
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
    if (stats.ends == stats.inits + stats.reopens) {
        violation("read: no image open (between init and end)");
        return -1;
    }
    if (offset >= NOR_SIZE || len > NOR_SIZE - offset) {
        violation("read: outside the area");
        return -1;
    }
    memcpy(buf, nor_chip.image + offset, len);
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
    if (stats.ends > stats.inits + stats.reopens) {
        violation("end: without init or reopen");
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

static int32_t nor_reopen(void *ctx, const fota_storage_t *storage, uint32_t image_len,
                          uint32_t offset) {
    (void)ctx;
    hook_enter();
    int32_t r = reopen_kept(storage, image_len, offset);
    hook_leave();
    return r;
}

static int32_t nor_state_load(void *ctx, uint32_t slot, uint8_t *buf, size_t len) {
    (void)ctx;
    hook_enter();
    int32_t r = slot_load(slot, buf, len);
    hook_leave();
    return r;
}

static int32_t nor_state_save(void *ctx, uint32_t slot, const uint8_t *buf, size_t len) {
    (void)ctx;
    hook_enter();
    int32_t r = slot_save(slot, buf, len);
    hook_leave();
    return r;
}

fota_flash_ops_t nor_flash_ops(bool with_read, bool with_state) {
    fota_flash_ops_t ops = {
        .ctx = NULL,
        .init = nor_init,
        .write = nor_write,
        .done = nor_done,
        .end = nor_end,
        .write_granularity = NOR_PAGE,
        .read = with_read ? nor_read : NULL,
        .reopen = with_state ? nor_reopen : NULL,
        .state_load = with_state ? nor_state_load : NULL,
        .state_save = with_state ? nor_state_save : NULL,
    };
    return ops;
}
