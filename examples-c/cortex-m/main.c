/* fota on a bare-metal Cortex-M4F (QEMU mps2-an386), on a real wire: the net
 * hooks drive a serial link to the host bridge (link.c, tests/bridge.py),
 * which opens the TCP connections to real servers. One request per run:
 *
 *   1. HELLO: the bridge answers with the test's configuration (URL, CA,
 *      expected result and image length, retries, where to dump the image,
 *      the image key, version and security counter of verified images,
 *      whether the NOR model gives fota its read hook);
 *   2. fota_request() into the NOR flash model (nor.c), time and random
 *      bytes from the bridge, on a painted stack;
 *   3. checks (result, verify_reason, callback once, NOR contract, commit
 *      only when the image is complete and was read back, nothing committed
 *      otherwise) and a REPORT line;
 *   4. the committed image is written to a host file over semihosting, for
 *      the test to compare byte for byte with what the server served.
 *
 * With a state interval in the configuration, fota also gets the resume
 * hooks and the NOR chip is taken as QEMU loaded it: the host carries it
 * from a run whose power it cut to the next (tests/qemu.py, case resume).
 *
 * Exit code (SYS_EXIT_EXTENDED): 0 when every check passed, 1 when one
 * failed, 2 when the link to the bridge failed before the request, 101-106
 * on a fault, 107 from the fatal hook. */
#include <string.h>

#include "fota.h"
#include "fw.h"
#include "semihost.h"
#include "stack.h"

/* ---- sys hooks ---------------------------------------------------------- */

static uint32_t sys_now_ms(void *ctx) {
    (void)ctx;
    return clock_ms();
}

static void sys_sleep_ms(void *ctx, uint32_t ms) {
    (void)ctx;
    hook_enter();
    clock_sleep_ms(ms);
    hook_leave();
}

static int32_t sys_random(void *ctx, uint8_t *buf, size_t len) {
    (void)ctx;
    hook_enter();
    int32_t r = link_random(buf, len);
    hook_leave();
    return r;
}

static uint64_t sys_unix_time(void *ctx) {
    (void)ctx;
    hook_enter();
    uint64_t t = link_unix_time();
    hook_leave();
    return t;
}

static void sys_log(void *ctx, int32_t level, const char *msg, size_t len) {
    (void)ctx;
    if (level > FOTA_LOG_INFO) {
        return;
    }
    hook_enter();
    char line[160];
    size_t n = len < sizeof line - 1 ? len : sizeof line - 1;
    memcpy(line, msg, n);
    line[n] = '\0';
    sh_puts("  fota: ");
    sh_puts(line);
    sh_puts("\n");
    hook_leave();
}

/* fota hit an internal bug: report it and end the run (a device would reset). */
static void sys_fatal(void *ctx, const char *msg, size_t len) {
    (void)ctx;
    char line[160];
    size_t n = len < sizeof line - 1 ? len : sizeof line - 1;
    memcpy(line, msg, n);
    line[n] = '\0';
    sh_puts("FATAL: ");
    sh_puts(line);
    sh_puts("\n");
    sh_exit(107);
}

/* ---- the request --------------------------------------------------------- */

static int32_t callback_result = -1;
static uint32_t callback_calls;

static void on_result(int32_t result, void *user) {
    (void)user;
    callback_result = result;
    callback_calls++;
}

static bool ok = true;

static void check(bool cond, const char *what) {
    if (!cond) {
        sh_puts("  FAIL: ");
        sh_puts(what);
        sh_puts("\n");
        ok = false;
    }
}

static void field(const char *name, uint32_t v) {
    sh_puts(" ");
    sh_puts(name);
    sh_puts("=");
    sh_putu(v);
}

int main(void) {
    clock_init();
    struct test_config cfg;
    if (link_start(&cfg) != 0) {
        sh_puts("FAIL: ");
        sh_puts(link_error());
        sh_puts("\n");
        return 2;
    }
    bool resumable = cfg.state_interval != 0;
    if (resumable && nor_chip_address() != NOR_CHIP_ADDRESS) {
        sh_puts("FAIL: the NOR chip is not where the host loads and saves it\n");
        return 1;
    }
    nor_reset(resumable);
    nor_stuck_bit(cfg.stuck_bit_at != 0 ? cfg.stuck_bit_at - 1 : NOR_NO_FAULT);

    fota_platform_t p = {
        .net = link_net_ops,
        .flash = nor_flash_ops(cfg.read_back, resumable),
        .sys = {.ctx = NULL, .now_ms = sys_now_ms, .sleep_ms = sys_sleep_ms, .random = sys_random,
                .unix_time = sys_unix_time, .log = sys_log, .fatal = sys_fatal},
    };
    if (fota_init(&p) != FOTA_OK) {
        sh_puts("FAIL: fota_init\n");
        return 1;
    }

    fota_opts_t opts;
    fota_opts_init(&opts);
    opts.url = cfg.url;
    opts.server_cert = cfg.ca;
    opts.server_cert_len = cfg.ca_len;
    opts.storage.address = nor_address();
    opts.storage.max_len = NOR_SIZE;
    opts.max_retries = cfg.max_retries;
    if (cfg.retry_delay_ms != 0) {
        opts.retry_delay_ms = cfg.retry_delay_ms;
    }
    if (cfg.idle_timeout_ms != 0) {
        opts.idle_timeout_ms = cfg.idle_timeout_ms;
    }
    if (cfg.timeout_ms != 0) {
        opts.timeout_ms = cfg.timeout_ms;
    }
    opts.image_key = cfg.image_key;
    opts.image_key_len = cfg.image_key_len;
    opts.image_sha256 = cfg.image_sha256;
    opts.version = cfg.version;
    opts.allow_downgrade = cfg.allow_downgrade;
    opts.security_counter = cfg.security_counter;
    opts.state_interval = cfg.state_interval;
    sh_puts("fota-fw: ");
    sh_puts(cfg.url);
    sh_puts("\n");

    stack_repaint();
    uint32_t base = stack_depth_here();
    uint64_t hooks0 = hook_ticks();
    uint64_t t0 = clock_ticks();
    int32_t result = fota_request(on_result, NULL, &opts);
    uint64_t ticks = clock_ticks() - t0;
    uint64_t hooks = hook_ticks() - hooks0;
    uint32_t peak = stack_high_water();
    uint32_t fota_stack = peak > base ? peak - base : 0;

    fota_progress_t progress;
    fota_get_progress(&progress);
    const struct nor_stats *nor = nor_stats();

    check(result == cfg.expect_result, "unexpected result");
    check(callback_calls == 1 && callback_result == result, "callback not called exactly once with the result");
    check(link_error()[0] == '\0', link_error());
    check(nor->error[0] == '\0', nor->error);
    check(nor->ends == nor->inits + nor->reopens,
          "flash end() not called exactly once per init() or reopen() that kept bytes");
    check(progress.verify_reason == cfg.expect_reason, "unexpected verify_reason");
    bool committed = nor->commits == 1;
    if (result == FOTA_OK) {
        check(committed, "image not committed exactly once");
        check(progress.bytes_written == cfg.expect_len, "bytes written differ from the image length");
        /* After a resume: the kept bytes were read back first (to rebuild
         * the digest), and only the rest was programmed in this run. */
        uint32_t kept = progress.resumed_from;
        check(kept == 0 || nor->reopens == 1, "resumed without a reopen that kept bytes");
        check(nor->bytes_programmed == progress.bytes_written - kept,
              "bytes programmed differ from bytes written");
        check(!cfg.read_back || nor->bytes_read == progress.bytes_written + kept,
              "the read-back did not read the whole image");
    } else {
        check(nor->commits == 0, "flash committed although the request failed");
    }
    if (committed && cfg.dump_path != NULL) {
        check(sh_write_file(cfg.dump_path, nor_area(), progress.bytes_written) == 0,
              "could not write the image to the host file");
    }
    if (cfg.chip_path != NULL) {
        /* Powered off cleanly: the flash as it is, for the next run. */
        check(sh_write_file(cfg.chip_path, (const uint8_t *)(uintptr_t)nor_chip_address(),
                            NOR_CHIP_SIZE) == 0,
              "could not write the NOR chip to the host file");
    }

    /* One line for the tests and scripts/firmware-figures.sh. fota_ticks:
     * timer ticks (25 MHz; 40 instructions each under -icount shift=0)
     * inside fota_request() but outside the net, flash, sleep, random,
     * time and log hooks. */
    sh_puts("REPORT");
    field("result", (uint32_t)result);
    field("written", progress.bytes_written);
    field("programmed", nor->bytes_programmed);
    field("writes", nor->writes);
    field("inits", nor->inits);
    field("erased", nor->erased_sectors);
    field("read", nor->bytes_read);
    field("commits", nor->commits);
    field("retries", progress.retries);
    field("status", progress.http_status);
    field("reason", progress.verify_reason);
    field("stack", fota_stack);
    field("stack_total", peak);
    field("stack_size", stack_size());
    field("ms", (uint32_t)(ticks / (CLOCK_HZ / 1000u)));
    field("fota_ticks", (uint32_t)(ticks - hooks));
    field("frames", link_frames());
    field("resumed", progress.resumed_from);
    field("saves", progress.state_saves);
    field("reopens", nor->reopens);
    sh_puts(ok ? " PASS\n" : " FAIL\n");
    return ok ? 0 : 1;
}
