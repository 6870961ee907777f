/* Shared declarations of the QEMU firmware: the clock, the serial link to the
 * host bridge (net hooks, test configuration), the NOR flash model. */
#ifndef FW_H
#define FW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fota.h"

/* ---- clock (clock.c) ---------------------------------------------------- */

#define CLOCK_HZ 25000000u  /* mps2-an386 system clock: the timer's tick rate */

void clock_init(void);
/* Ticks of CLOCK_HZ since clock_init(). */
uint64_t clock_ticks(void);
uint32_t clock_ms(void);
/* Busy-waits (no other task to run). */
void clock_sleep_ms(uint32_t ms);
/* Brackets a hook's body: the ticks spent inside hooks are counted apart, so
 * that fota's own work can be told from waiting on the wire. */
void hook_enter(void);
void hook_leave(void);
uint64_t hook_ticks(void);

/* ---- serial link to the host bridge (link.c) ---------------------------- */

/* What the bridge tells the firmware to do (the HELLO answer). */
struct test_config {
    const char *url;
    const uint8_t *ca;          /* PEM/DER bytes, NULL for none */
    size_t ca_len;
    int32_t expect_result;
    uint32_t expect_len;        /* image bytes when expect_result is FOTA_OK */
    const char *dump_path;      /* host file the committed image is written to, or NULL */
    uint32_t max_retries;
    uint32_t retry_delay_ms;
    uint32_t idle_timeout_ms;
    uint32_t timeout_ms;
    /* Verified images (fota_opts_t): */
    const uint8_t *image_key;   /* PEM/DER public key, NULL for none */
    size_t image_key_len;
    const uint8_t *image_sha256; /* 32 bytes, NULL for none */
    const char *version;        /* the current version, NULL for none */
    bool allow_downgrade;
    uint32_t security_counter;
    bool read_back;             /* give fota the NOR model's read hook */
    uint32_t stuck_bit_at;      /* fault: image offset + 1 of a byte with a bit that does not program, 0 none */
    uint32_t expect_reason;     /* fota_progress_t.verify_reason after the request */
    uint32_t state_interval;    /* != 0: the resume hooks, fota_opts_t.state_interval, and
                                 * the NOR chip as QEMU loaded it (kept from an earlier run) */
    const char *chip_path;      /* host file the NOR chip is written to at the end, or NULL */
};

/* Says hello to the bridge and fills `cfg` from its answer (pointers into a
 * static buffer). Returns 0, or < 0 when the link failed. */
int32_t link_start(struct test_config *cfg);
/* Host time (seconds since 1970) and random bytes, from the bridge. */
uint64_t link_unix_time(void);
int32_t link_random(uint8_t *buf, size_t len);
/* Empty when the link worked, else the first failure (framing, timeout). */
const char *link_error(void);
/* Frames exchanged, payload bytes received from the bridge. */
uint32_t link_frames(void);

extern const fota_net_ops_t link_net_ops;

/* ---- NOR flash model (nor.c) -------------------------------------------- */

#define NOR_SECTOR 4096u
#define NOR_PAGE 256u
#define NOR_SIZE (256u * 1024u)
/* The whole chip: the update area, then two state sectors. The host loads and
 * saves it at this address (tests/bridge.py NOR_CHIP_*; mps2-an386.ld). */
#define NOR_CHIP_ADDRESS 0x00200000u
#define NOR_CHIP_SIZE (NOR_SIZE + 2u * NOR_SECTOR)

struct nor_stats {
    uint32_t inits, erased_sectors, writes, bytes_programmed, ends, commits;
    uint32_t reopens;      /* reopen() calls that kept bytes (an end() each) */
    uint32_t bytes_read;  /* through the read hook (read-back) */
    uint32_t image_len;  /* from init */
    const char *error;   /* first contract violation seen, or "" */
};

/* Resets the counters; unless `kept` (the chip as QEMU loaded it, from an
 * earlier run), fills the area with 0x00 (old contents: nothing is erased)
 * and erases the state sectors. */
void nor_reset(bool kept);
/* Fault injection: at image offset `offset`, the lowest bit the image clears
 * stays 1 (a cell that does not program; NOR_NO_FAULT for none). Only a
 * read-back can notice. */
#define NOR_NO_FAULT UINT32_MAX
void nor_stuck_bit(uint32_t offset);
const struct nor_stats *nor_stats(void);
const uint8_t *nor_area(void);
uint32_t nor_address(void);
uint32_t nor_chip_address(void);

/* The flash hooks; `with_read` adds the read hook (fota then reads the image
 * back before end(true)), `with_state` the resume hooks (reopen, two state
 * slots). */
fota_flash_ops_t nor_flash_ops(bool with_read, bool with_state);

#endif
