/* fota on a bare-metal Cortex-M4F (QEMU mps2-an386): downloads scripted images
 * from the compiled-in server into the modelled NOR flash, checks every image
 * against its CRC-32, and reports over semihosting the result, the bytes
 * written and the stack high-water mark. Exit code (SYS_EXIT_EXTENDED): 0
 * when every scenario passed, else the number of failed scenarios. */
#include <string.h>

#include "fota.h"
#include "fw.h"
#include "semihost.h"
#include "stack.h"

/* ---- virtual clock and the sys hooks ---------------------------------- */

static uint32_t now;

uint32_t clock_ms(void) { return now; }
void clock_advance(uint32_t ms) { now += ms; }

static uint32_t sys_now_ms(void *ctx) {
    (void)ctx;
    return now;
}

static void sys_sleep_ms(void *ctx, uint32_t ms) {
    (void)ctx;
    now += ms;  /* no other task to run: time just passes */
}

static void sys_log(void *ctx, int32_t level, const char *msg, size_t len) {
    (void)ctx;
    if (level > FOTA_LOG_WARN) {
        return;
    }
    char line[160];
    size_t n = len < sizeof line - 1 ? len : sizeof line - 1;
    memcpy(line, msg, n);
    line[n] = '\0';
    sh_puts("    fota: ");
    sh_puts(line);
    sh_puts("\n");
}

static const fota_platform_t platform = {
    .net = {0},  /* filled from server_net_ops in main() */
    .flash = {0},
    .sys = {.ctx = NULL, .now_ms = sys_now_ms, .sleep_ms = sys_sleep_ms, .random = NULL, .log = sys_log},
};

/* ---- the scenarios ------------------------------------------------------ */

static const struct scenario scenarios[] = {
    {.name = "content-length", .url = "http://fw.example.com:8080/fw/app-1.bin", .path = "/fw/app-1.bin",
     .seed = 0xA11CE, .len = 40000, .framing = FRAMING_LENGTH, .status = 200,
     .expect_result = FOTA_OK, .expect_retries = 0},
    {.name = "chunked", .url = "http://fw.example.com:8080/fw/app-2.bin", .path = "/fw/app-2.bin",
     .seed = 0xB0B, .len = 30001, .framing = FRAMING_CHUNKED, .status = 200,
     .expect_result = FOTA_OK, .expect_retries = 0},
    {.name = "drop+206 resume", .url = "http://fw.example.com:8080/fw/app-3.bin", .path = "/fw/app-3.bin",
     .seed = 0xC0FFEE, .len = 50000, .framing = FRAMING_LENGTH, .status = 200, .drop_after = 23000,
     .expect_result = FOTA_OK, .expect_retries = 1},
    {.name = "no update (404)", .url = "http://fw.example.com:8080/fw/none.bin", .path = "/fw/none.bin",
     .seed = 0, .len = 0, .framing = FRAMING_LENGTH, .status = 404,
     .expect_result = FOTA_NO_UPDATE, .expect_retries = 0},
};

static int32_t callback_result = -1;
static uint32_t callback_calls;

static void on_result(int32_t result, void *user) {
    (void)user;
    callback_result = result;
    callback_calls++;
}

static void fail_line(const char *what) {
    sh_puts("    FAIL: ");
    sh_puts(what);
    sh_puts("\n");
}

/* Runs one scenario; returns true when everything checked out. */
static bool run(const struct scenario *sc, uint32_t *fota_stack) {
    nor_reset();
    server_start(sc);
    callback_result = -1;
    callback_calls = 0;

    fota_opts_t opts;
    fota_opts_init(&opts);
    opts.url = sc->url;
    opts.storage.address = nor_address();
    opts.storage.max_len = NOR_SIZE;
    opts.max_retries = 3;

    stack_repaint();
    uint32_t base = stack_depth_here();
    uint32_t t0 = clock_ms();
    int32_t result = fota_request(on_result, NULL, &opts);
    uint32_t peak = stack_high_water();
    *fota_stack = peak > base ? peak - base : 0;

    fota_progress_t progress;
    fota_get_progress(&progress);
    const struct nor_stats *nor = nor_stats();
    bool ok = true;

    sh_puts("  result ");
    sh_puts(fota_result_str(result));
    sh_puts(", bytes written ");
    sh_putu(progress.bytes_written);
    sh_puts(", programmed ");
    sh_putu(nor->bytes_programmed);
    sh_puts(" in ");
    sh_putu(nor->writes);
    sh_puts(" writes, connections ");
    sh_putu(server_connections());
    sh_puts(", retries ");
    sh_putu(progress.retries);
    sh_puts(", virtual time ");
    sh_putu(clock_ms() - t0);
    sh_puts(" ms\n  stack: peak ");
    sh_putu(peak);
    sh_puts(" B of ");
    sh_putu(stack_size());
    sh_puts(", fota_request() and its hooks ");
    sh_putu(*fota_stack);
    sh_puts(" B\n");

    if (result != sc->expect_result) {
        fail_line("unexpected result");
        ok = false;
    }
    if (callback_calls != 1 || callback_result != result) {
        fail_line("callback not called exactly once with the result");
        ok = false;
    }
    if (progress.retries != sc->expect_retries) {
        fail_line("unexpected number of retries");
        ok = false;
    }
    if (server_error()[0] != '\0') {
        fail_line(server_error());
        ok = false;
    }
    if (nor->error[0] != '\0') {
        fail_line(nor->error);
        ok = false;
    }
    if (nor->ends != nor->inits) {
        fail_line("flash end() not called exactly once per init()");
        ok = false;
    }
    if (sc->expect_result == FOTA_OK) {
        uint32_t want = image_crc32(sc->seed, sc->len);
        uint32_t got = crc32_update(0, nor_area(), sc->len);
        sh_puts("  crc32 expected ");
        sh_puthex(want);
        sh_puts(", in flash ");
        sh_puthex(got);
        sh_puts("\n");
        if (got != want) {
            fail_line("image in flash does not match its CRC-32");
            ok = false;
        }
        if (progress.bytes_written != sc->len || nor->commits != 1) {
            fail_line("image not complete or not committed once");
            ok = false;
        }
        /* Bytes after the image must still be erased (nothing written past the end). */
        for (uint32_t i = sc->len; i < NOR_SIZE && i < ((sc->len + NOR_SECTOR - 1) / NOR_SECTOR) * NOR_SECTOR; i++) {
            if (nor_area()[i] != 0xFF) {
                fail_line("bytes written past the end of the image");
                ok = false;
                break;
            }
        }
    } else if (nor->commits != 0) {
        fail_line("flash committed although the request failed");
        ok = false;
    }
    return ok;
}

int main(void) {
    static const uint8_t check[] = "123456789";
    if (crc32_update(0, check, 9) != 0xCBF43926u) {
        sh_puts("FAIL: CRC-32 self-test\n");
        return 100;
    }

    fota_platform_t p = platform;
    p.net = server_net_ops;
    p.flash = nor_flash_ops;
    if (fota_init(&p) != FOTA_OK) {
        sh_puts("FAIL: fota_init\n");
        return 100;
    }

    sh_puts("fota on Cortex-M4F (QEMU mps2-an386), update area at ");
    sh_puthex(nor_address());
    sh_puts(", NOR ");
    sh_putu(NOR_SIZE / 1024);
    sh_puts(" KiB, sectors 4096, pages 256\n");

    uint32_t failed = 0, worst_fota = 0;
    const uint32_t count = sizeof scenarios / sizeof scenarios[0];
    for (uint32_t i = 0; i < count; i++) {
        const struct scenario *sc = &scenarios[i];
        sh_puts("[");
        sh_putu(i + 1);
        sh_puts("/");
        sh_putu(count);
        sh_puts("] ");
        sh_puts(sc->name);
        sh_puts(": ");
        sh_puts(sc->url);
        sh_puts("\n");
        uint32_t fota_stack = 0;
        bool ok = run(sc, &fota_stack);
        if (fota_stack > worst_fota) {
            worst_fota = fota_stack;
        }
        sh_puts(ok ? "  PASS\n" : "  FAILED\n");
        failed += ok ? 0 : 1;
    }

    sh_puts("peak stack of fota_request() with hooks: ");
    sh_putu(worst_fota);
    sh_puts(" B (receive buffer FOTA_RX_BUF=");
    sh_putu(FOTA_RX_BUF);
    sh_puts(" B is static, not on the stack)\n");
    sh_puts(failed == 0 ? "ALL PASSED\n" : "SOME FAILED\n");
    return (int)failed;
}
