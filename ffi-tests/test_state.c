/*
 * Resume across reboots through the C API: the flash state hooks (two slots)
 * and reopen, fota_progress_t.resumed_from / state_saves, fota_state_discard(),
 * and state hooks that misbehave (too many bytes, odd reopen values).
 *
 * A "reboot" here is mock_reset() with the flash bytes and the state slots
 * kept, as a device keeps its NOR contents.
 */
#include "mocks.h"

#include <stdio.h>
#include <string.h>

enum { IMAGE_LEN = 50000, DROP_AT = 30000 };

static uint8_t g_img[IMAGE_LEN];
static uint8_t g_kept[MOCK_IMAGE_MAX];

static struct {
    uint8_t slot[2][FOTA_STATE_RECORD_MAX + 16];
    size_t len[2];
    int loads, saves, reopens;
    uint32_t reopen_offset;
    int32_t reopen_ret;     /* >= 0 or < 0: returned as is; INT32_MIN: the offset */
    int32_t load_extra;     /* added to the bytes state_load claims */
    bool script_on_reopen;  /* script a 206 from the kept offset */
} g_state;

static int32_t state_load(void *ctx, uint32_t slot, uint8_t *buf, size_t len) {
    (void)ctx;
    g_state.loads++;
    if (slot > 1 || len != FOTA_STATE_RECORD_MAX) {
        return -1;
    }
    memcpy(buf, g_state.slot[slot], g_state.len[slot]);
    return (int32_t)g_state.len[slot] + g_state.load_extra;
}

static int32_t state_save(void *ctx, uint32_t slot, const uint8_t *buf, size_t len) {
    (void)ctx;
    if (slot > 1 || len > FOTA_STATE_RECORD_MAX) {
        return -1;
    }
    memcpy(g_state.slot[slot], buf, len);
    g_state.len[slot] = len;
    g_state.saves++;
    return 0;
}

static void script_206(uint32_t from) {
    static uint8_t resp[IMAGE_LEN + 256];
    int h = snprintf((char *)resp, 256,
                     "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes %u-%u/%u\r\n"
                     "Content-Length: %u\r\nETag: \"v1\"\r\n\r\n",
                     (unsigned)from, IMAGE_LEN - 1u, (unsigned)IMAGE_LEN, IMAGE_LEN - (unsigned)from);
    memcpy(resp + h, g_img + from, IMAGE_LEN - from);
    mock_script(resp, (size_t)h + IMAGE_LEN - from);
}

/* Keeps the first `offset` bytes (the mock flash has them back from g_kept). */
static int32_t reopen(void *ctx, const fota_storage_t *storage, uint32_t image_len, uint32_t offset) {
    (void)storage;
    mock_flash_t *f = ctx;
    g_state.reopens++;
    g_state.reopen_offset = offset;
    int32_t kept = g_state.reopen_ret == INT32_MIN ? (int32_t)offset : g_state.reopen_ret;
    if (kept <= 0 || image_len != IMAGE_LEN) {
        return kept;
    }
    /* Taken up: for the mocks' invariants this is an init. */
    f->open = true;
    f->init_ok++;
    f->written = (size_t)offset;
    memcpy(f->image, g_kept, offset);
    if (g_state.script_on_reopen) {
        script_206(offset);
    }
    return kept;
}

static void install(void) {
    fota_platform_t p;
    mock_platform(&p);
    p.flash.reopen = reopen;
    p.flash.state_load = state_load;
    p.flash.state_save = state_save;
    assert_int_equal(fota_init(&p), FOTA_OK);
}

static int setup(void **state) {
    (void)state;
    mock_reset();
    memset(&g_state, 0, sizeof(g_state));
    g_state.reopen_ret = INT32_MIN;
    install();
    mock_fill_image(g_img, IMAGE_LEN, 3);
    return 0;
}

/* The device restarts: RAM is gone, the flash bytes and the slots stay. */
static void reboot(void) {
    memcpy(g_kept, g_flash.image, sizeof(g_kept));
    mock_reset();
    install();
    g_state.loads = g_state.saves = g_state.reopens = 0;
}

static void opts(fota_opts_t *o) {
    mock_opts(o);
    o->state_interval = 8192;
}

/* A 200 with a strong ETag, cut by the peer after DROP_AT body bytes. */
static void script_dropped_200(void) {
    static uint8_t resp[IMAGE_LEN + 256];
    int h = snprintf((char *)resp, 256, "HTTP/1.1 200 OK\r\nContent-Length: %u\r\nETag: \"v1\"\r\n\r\n",
                     (unsigned)IMAGE_LEN);
    memcpy(resp + h, g_img, DROP_AT);
    mock_script(resp, (size_t)h + DROP_AT);
}

/* A request over what is scripted: it must succeed. */
static void request_ok(void) {
    fota_opts_t o;
    opts(&o);
    mock_cb_t cb;
    int32_t rc = mock_request(&o, &cb);
    mock_check(rc, &cb);
    assert_int_equal(rc, FOTA_OK);
}

/* A request served the whole image at once: it must succeed. */
static void download_whole_image(void) {
    mock_script_image(g_img, IMAGE_LEN);
    request_ok();
}

/* A first request that ends with the connection: the record keeps the image. */
static uint32_t drop_and_reboot(void) {
    script_dropped_200();
    fota_opts_t o;
    opts(&o);
    mock_cb_t cb;
    int32_t rc = mock_request(&o, &cb);
    assert_int_equal(rc, FOTA_ERR_DISCONNECTED);
    assert_int_equal(cb.calls, 1);
    /* No end(): the image waits for the next request's reopen. */
    assert_int_equal(g_flash.init_ok, 1);
    assert_int_equal(g_flash.end_calls, 0);
    fota_progress_t p;
    fota_get_progress(&p);
    assert_int_equal(p.resumed_from, 0);
    assert_true(p.state_saves >= 2); /* every 8 KiB written, and at the failure */
    assert_int_equal((int)p.state_saves, g_state.saves);
    assert_true(g_state.len[0] > 0 && g_state.len[1] > 0);
    assert_true(mock_log_contains("kept for a resume at byte"));
    uint32_t written = p.bytes_written;
    reboot();
    return written;
}

static void a_dropped_download_continues_after_a_reboot(void **state) {
    (void)state;
    uint32_t written = drop_and_reboot();
    g_state.script_on_reopen = true;
    request_ok();
    mock_check_image(g_img, IMAGE_LEN);
    assert_int_equal(g_state.reopens, 1);
    assert_int_equal(g_flash.init_calls, 0);
    assert_int_equal(g_state.reopen_offset, written);
    fota_progress_t p;
    fota_get_progress(&p);
    assert_int_equal(p.resumed_from, written);
    char range[64];
    snprintf(range, sizeof range, "Range: bytes=%u-\r\nIf-Range: \"v1\"\r\n", (unsigned)written);
    assert_non_null(strstr(mock_sent(0), range));
    char line[64];
    snprintf(line, sizeof line, "resumed at byte %u of %u", (unsigned)written, (unsigned)IMAGE_LEN);
    assert_true(mock_log_contains(line));
    /* Committed: the record is a tombstone, the next request starts from 0. */
    reboot();
    download_whole_image();
    assert_int_equal(g_state.reopens, 0);
    fota_get_progress(&p);
    assert_int_equal(p.resumed_from, 0);
}

static void fota_state_discard_forgets_the_record(void **state) {
    (void)state;
    (void)drop_and_reboot();
    assert_int_equal(fota_state_discard(), FOTA_OK);
    download_whole_image();
    assert_int_equal(g_state.reopens, 0);
    assert_null(strstr(mock_sent(0), "Range:"));
    /* Nothing to forget: still OK. Without state hooks: OK, nothing done. */
    assert_int_equal(fota_state_discard(), FOTA_OK);
    mock_reset();
    assert_int_equal(fota_state_discard(), FOTA_OK);
}

/* reopen values fota must not trust: the image starts from byte 0. */
static void odd_reopen_values_start_from_zero(void **state) {
    (void)state;
    const int32_t values[] = { -1, 0, IMAGE_LEN, IMAGE_LEN + 1, 7 };
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
        setup(NULL);
        g_flash.write_granularity = 256;
        install();
        (void)drop_and_reboot();
        g_flash.write_granularity = 256;
        install();
        g_state.reopen_ret = values[i];
        mock_script_image(g_img, IMAGE_LEN);
        fota_opts_t o;
        opts(&o);
        mock_cb_t cb;
        int32_t rc = mock_request(&o, &cb);
        assert_int_equal(rc, FOTA_OK);
        assert_int_equal(cb.calls, 1);
        /* mock_check's "one init" does not hold here: the reopened area
           and the new image are opened and ended once each. */
        assert_int_equal(g_flash.violations, 0);
        assert_false(g_flash.open);
        assert_int_equal(g_flash.end_calls, g_flash.init_ok);
        assert_int_equal(g_state.reopens, 1);
        assert_null(strstr(mock_sent(0), "Range:"));
        assert_int_equal(g_flash.end_commit, 1);
        assert_int_equal(g_flash.written, IMAGE_LEN);
        assert_memory_equal(g_flash.image, g_img, IMAGE_LEN);
        fota_progress_t p;
        fota_get_progress(&p);
        assert_int_equal(p.resumed_from, 0);
        /* A kept area (a positive value) is ended before init starts over. */
        assert_int_equal(g_flash.end_discard, values[i] > 0 ? 1 : 0);
    }
}

static void a_load_claiming_too_many_bytes_is_an_empty_slot(void **state) {
    (void)state;
    (void)drop_and_reboot();
    g_state.load_extra = FOTA_STATE_RECORD_MAX + 1;
    download_whole_image();
    assert_int_equal(g_state.loads, 2);
    assert_int_equal(g_state.reopens, 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(a_dropped_download_continues_after_a_reboot, setup),
        cmocka_unit_test_setup(fota_state_discard_forgets_the_record, setup),
        cmocka_unit_test_setup(odd_reopen_values_start_from_zero, setup),
        cmocka_unit_test_setup(a_load_claiming_too_many_bytes_is_an_empty_slot, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
