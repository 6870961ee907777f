/* Shared declarations of the QEMU firmware: scripted server, NOR flash model,
 * virtual clock, CRC-32. */
#ifndef FW_H
#define FW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fota.h"

/* ---- images and CRC-32 ---------------------------------------------- */

/* Byte `i` of the test image `seed`: a hash of both, so any range of the
 * image can be served without storing it. */
uint8_t image_byte(uint32_t seed, uint32_t i);
/* CRC-32 (IEEE 802.3, reflected 0xEDB88320), bit by bit; `crc` starts at 0. */
uint32_t crc32_update(uint32_t crc, const uint8_t *data, size_t len);
/* CRC-32 of the whole test image `seed` of `len` bytes. */
uint32_t image_crc32(uint32_t seed, uint32_t len);

/* ---- scripted HTTP server (net hooks) -------------------------------- */

enum framing { FRAMING_LENGTH, FRAMING_CHUNKED, FRAMING_NONE };

struct scenario {
    const char *name;
    const char *url;          /* what fota_request() is given */
    const char *path;         /* request target the server expects */
    uint32_t seed, len;       /* the image */
    enum framing framing;
    uint16_t status;          /* first answer's status (200, or >= 300 for no update) */
    uint32_t drop_after;      /* body bytes sent before the first connection drops (0: never) */
    int32_t expect_result;    /* what fota_request() must return */
    uint32_t expect_retries;
};

/* Resets the server for a scenario. */
void server_start(const struct scenario *sc);
/* Empty string when every request the server got was as expected, else why not. */
const char *server_error(void);
uint32_t server_connections(void);

extern const fota_net_ops_t server_net_ops;

/* ---- NOR flash model (flash hooks) ----------------------------------- */

#define NOR_SECTOR 4096u
#define NOR_PAGE 256u
#define NOR_SIZE (128u * 1024u)

struct nor_stats {
    uint32_t inits, erased_sectors, writes, bytes_programmed, ends, commits;
    uint32_t image_len;  /* from init */
    const char *error;   /* first contract violation seen, or "" */
};

/* Fills the area with 0x00 (old contents: nothing is erased) and resets the counters. */
void nor_reset(void);
const struct nor_stats *nor_stats(void);
const uint8_t *nor_area(void);
uint32_t nor_address(void);

extern const fota_flash_ops_t nor_flash_ops;

/* ---- virtual clock (sys hooks) --------------------------------------- */

/* Milliseconds: advanced by sleep_ms, by recv timeouts and 1 ms per I/O call. */
uint32_t clock_ms(void);
void clock_advance(uint32_t ms);

#endif
