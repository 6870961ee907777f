/*
 * Downloads through the C API with scripted sockets and an in-memory flash:
 * every result code reachable without TLS and a real network, the flash
 * invariants (init only once an image is announced, writes in order and
 * aligned, end(true) once on success, end(false) after every failure after
 * init), progress figures, timeouts with a fake clock, misbehaving hooks.
 */
#include "mocks.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint8_t g_img[MOCK_IMAGE_MAX];

static int setup(void **state) {
    (void)state;
    mock_reset();
    return 0;
}

/* Re-installs the mocks after changing g_flash.write_granularity or no_done_hook. */
static void reinstall(void) {
    fota_platform_t p;
    mock_platform(&p);
    assert_int_equal(fota_init(&p), FOTA_OK);
}

/* Runs a request with the default opts, checks the invariants, returns the code. */
static int32_t run(const fota_opts_t *opts) {
    mock_cb_t cb;
    int32_t rc = mock_request(opts, &cb);
    mock_check(rc, &cb);
    return rc;
}

static int32_t run_default(void) {
    fota_opts_t o;
    mock_opts(&o);
    return run(&o);
}

static void progress(fota_progress_t *p) {
    memset(p, 0xa5, sizeof(*p));
    fota_get_progress(p);
}

/* ------------------------------------------------------------------ success */

static void content_length_image_is_written_and_committed(void **state) {
    (void)state;
    mock_fill_image(g_img, 5000, 1);
    mock_script_image(g_img, 5000);
    fota_opts_t o;
    mock_opts(&o);
    o.storage.address = 0x08040000u;
    o.storage.path = "/fota.bin";
    o.storage.param1 = &o;
    mock_progress_t pcb = {0};
    o.progress_cb = mock_progress_cb;
    o.progress_user = &pcb;
    int32_t rc = run(&o);
    assert_int_equal(rc, FOTA_OK);
    mock_check_image(g_img, 5000);
    /* init got the announced length and the storage as given. */
    assert_int_equal(g_flash.init_calls, 1);
    assert_int_equal(g_flash.init_image_len, 5000);
    assert_int_equal(g_flash.storage.address, 0x08040000u);
    assert_int_equal(g_flash.storage.max_len, MOCK_IMAGE_MAX);
    assert_ptr_equal(g_flash.storage.path, o.storage.path);
    assert_ptr_equal(g_flash.storage.param1, &o);
    /* done polled once (ready at once). */
    assert_int_equal(g_flash.done_calls, 1);
    /* progress callback: after writes, monotonic, ends at (len, len). */
    assert_true(pcb.calls >= 1);
    assert_false(pcb.non_monotonic);
    assert_int_equal(pcb.last_written, 5000);
    assert_int_equal(pcb.last_total, 5000);
    /* progress figures of the last request. */
    fota_progress_t p;
    progress(&p);
    assert_int_equal(p.state, FOTA_STATE_IDLE);
    assert_int_equal(p.bytes_written, 5000);
    assert_int_equal(p.total, 5000);
    assert_int_equal(p.retries, 0);
    assert_int_equal(p.http_status, 200);
    assert_int_equal(p.platform_code, 0);
}

static void one_mebibyte_in_many_splittings(void **state) {
    (void)state;
    static const size_t pieces[] = {0, 1, 7, 1000, 4095, 4096, 4097, 65536};
    size_t len = MOCK_IMAGE_MAX;
    mock_fill_image(g_img, len, 2);
    for (size_t i = 0; i < sizeof(pieces) / sizeof(pieces[0]); i++) {
        mock_reset();
        mock_conn_t *c = mock_script_image(g_img, len);
        c->max_piece = pieces[i];
        /* A split inside the head and right after it. */
        size_t s[] = {5, 17, 40};
        mock_split(c, 3, s);
        int32_t rc = run_default();
        if (rc != FOTA_OK) {
            fail_msg("pieces of %zu: %s", pieces[i], fota_result_str(rc));
        }
        mock_check_image(g_img, len);
    }
}

static void granularity_256_with_odd_splits(void **state) {
    (void)state;
    static const size_t lens[] = {1, 255, 256, 257, 1000, 4096, 10007, 65536};
    for (size_t l = 0; l < sizeof(lens) / sizeof(lens[0]); l++) {
        size_t len = lens[l];
        mock_fill_image(g_img, len, 3 + (uint32_t)l);
        mock_reset();
        g_flash.write_granularity = 256;
        reinstall();
        mock_conn_t *c = mock_script_image(g_img, len);
        c->max_piece = 333;
        size_t s[] = {1, 2, 39, 41, 100, 255, 257, 511, 513, 700, 701, 1500};
        mock_split(c, sizeof(s) / sizeof(s[0]), s);
        int32_t rc = run_default(); /* mock_check verifies offsets and lengths */
        if (rc != FOTA_OK) {
            fail_msg("image of %zu: %s", len, fota_result_str(rc));
        }
        mock_check_image(g_img, len);
        for (int i = 0; i < g_flash.nwrites; i++) {
            assert_int_equal(g_flash.offsets[i] % 256, 0);
            if (i + 1 < g_flash.nwrites) {
                assert_int_equal(g_flash.lens[i] % 256, 0);
            }
        }
    }
}

static void granularity_with_a_chunked_body(void **state) {
    (void)state;
    size_t len = 20000;
    mock_fill_image(g_img, len, 4);
    g_flash.write_granularity = 512;
    reinstall();
    mock_conn_t *c = mock_script_chunked(g_img, len, 1000);
    c->max_piece = 777;
    assert_int_equal(run_default(), FOTA_OK);
    mock_check_image(g_img, len);
    assert_int_equal(g_flash.init_image_len, 0); /* unknown length */
}

/*
 * The receive buffer must give back the room of decoded framing (chunk-size
 * lines, CRLFs) and of the response head: the framing of a whole download is
 * far larger than FOTA_RX_BUF (3000 one-byte chunks: 15 KB of framing).
 */
static void chunked_framing_overhead_does_not_fill_the_buffer(void **state) {
    (void)state;
    size_t len = 3000;
    mock_fill_image(g_img, len, 21);
    mock_script_chunked(g_img, len, 1);
    int32_t rc = run_default();
    if (rc != FOTA_OK) {
        fail_msg("3000 one-byte chunks: %s (expected FOTA_OK)", fota_result_str(rc));
    }
    mock_check_image(g_img, len);
}

static void chunked_one_mebibyte_in_1k_chunks(void **state) {
    (void)state;
    size_t len = 1024 * 1024;
    mock_fill_image(g_img, len, 22);
    mock_script_chunked(g_img, len, 1024); /* 1024 chunks, 7 framing bytes each */
    int32_t rc = run_default();
    if (rc != FOTA_OK) {
        fail_msg("1 MiB in 1 KiB chunks: %s (expected FOTA_OK)", fota_result_str(rc));
    }
    mock_check_image(g_img, len);
}

/* FOTA_WRITE_GRANULARITY_MAX: a whole 4096-byte block must fit in the
   receive buffer once the response head is consumed. */
static void granularity_4096_blocks_fit(void **state) {
    (void)state;
    size_t len = 10000;
    mock_fill_image(g_img, len, 23);
    g_flash.write_granularity = 4096;
    reinstall();
    mock_script_image(g_img, len);
    int32_t rc = run_default();
    if (rc != FOTA_OK) {
        fail_msg("granularity 4096, 10000-byte image: %s (expected FOTA_OK)", fota_result_str(rc));
    }
    mock_check_image(g_img, len);
}

static void chunked_body_in_large_chunks(void **state) {
    (void)state;
    size_t len = 300000;
    mock_fill_image(g_img, len, 5);
    mock_conn_t *c = mock_script_chunked(g_img, len, 8192);
    c->max_piece = 1460;
    assert_int_equal(run_default(), FOTA_OK);
    mock_check_image(g_img, len);
}

static void body_until_close_without_length(void **state) {
    (void)state;
    size_t len = 3000;
    mock_fill_image(g_img, len, 6);
    uint8_t resp[4000];
    static const char head[] = "HTTP/1.0 200 OK\r\nContent-Type: application/octet-stream\r\n\r\n";
    memcpy(resp, head, sizeof(head) - 1);
    memcpy(resp + sizeof(head) - 1, g_img, len);
    mock_script(resp, sizeof(head) - 1 + len)->max_piece = 1000;
    assert_int_equal(run_default(), FOTA_OK);
    mock_check_image(g_img, len);
    assert_int_equal(g_flash.init_image_len, 0);
}

static void interim_1xx_responses_are_skipped(void **state) {
    (void)state;
    mock_script_str("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 102 Processing\r\n\r\n"
                    "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello");
    assert_int_equal(run_default(), FOTA_OK);
    mock_check_image((const uint8_t *)"hello", 5);
}

static void whole_image_as_206_is_accepted(void **state) {
    (void)state;
    mock_script_str("HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 0-4/5\r\n"
                    "Content-Length: 5\r\n\r\nhello");
    assert_int_equal(run_default(), FOTA_OK);
    mock_check_image((const uint8_t *)"hello", 5);
}

static void bytes_past_content_length_are_ignored(void **state) {
    (void)state;
    mock_script_str("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloEXTRA BYTES");
    assert_int_equal(run_default(), FOTA_OK);
    mock_check_image((const uint8_t *)"hello", 5);
}

static void done_busy_then_ok(void **state) {
    (void)state;
    g_flash.done_busy = 3;
    mock_script_str("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello");
    assert_int_equal(run_default(), FOTA_OK);
    assert_int_equal(g_flash.done_calls, 4);
    assert_int_equal(g_sys.sleep_calls, 3);
    assert_int_equal(g_sys.slept_ms, 3 * FOTA_DONE_POLL_MS);
}

static void partial_sends_and_would_block_are_retried(void **state) {
    (void)state;
    g_net.send_max = 3;
    g_net.send_would_block = 4;
    mock_conn_t *c = mock_script_str("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello");
    c->would_block_before = 10;
    assert_int_equal(run_default(), FOTA_OK);
    mock_check_image((const uint8_t *)"hello", 5);
    assert_true(g_net.send_calls > 10);
    /* Waits are sliced so that fota_abort() is noticed soon. */
    assert_in_range(g_net.max_recv_timeout, 1, FOTA_ABORT_SLICE_MS);
    assert_in_range(g_net.max_send_timeout, 1, FOTA_ABORT_SLICE_MS);
}

static void clock_wrap_around_is_harmless(void **state) {
    (void)state;
    g_sys.now = UINT32_MAX - 300; /* wraps during the request */
    mock_conn_t *c = mock_script_str("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello");
    c->would_block_before = 5;
    assert_int_equal(run_default(), FOTA_OK);
    assert_true(g_sys.now < 10000);
}

static void redirect_is_followed_when_allowed(void **state) {
    (void)state;
    mock_script_str("HTTP/1.1 302 Found\r\nLocation: http://cdn.example.com:8081/img.bin\r\n"
                    "Content-Length: 0\r\n\r\n");
    mock_script_str("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello");
    fota_opts_t o;
    mock_opts(&o);
    o.max_redirects = 1;
    assert_int_equal(run(&o), FOTA_OK);
    mock_check_image((const uint8_t *)"hello", 5);
    assert_int_equal(g_net.connect_ok, 2);
    assert_string_equal(g_net.hosts[1], "cdn.example.com");
    assert_int_equal(g_net.ports[1], 8081);
    assert_true(strncmp(mock_sent(1), "GET /img.bin HTTP/1.1\r\n", 23) == 0);
}

/* ------------------------------------------------------------------ no update, refusals */

static void status_300_and_above_is_no_update(void **state) {
    (void)state;
    static const char *const resp[] = {
        "HTTP/1.1 304 Not Modified\r\n\r\n",
        "HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n\r\nnot found",
        "HTTP/1.1 500 Oops\r\nContent-Type: text/html\r\n\r\n<html>a page until close</html>",
        "HTTP/1.1 302 Found\r\nLocation: http://x/y\r\nContent-Length: 0\r\n\r\n", /* no redirects */
        "HTTP/1.1 409 Conflict\r\nContent-Length: 12\r\n\r\n{\"msg\":\"no\"}",
    };
    for (size_t i = 0; i < sizeof(resp) / sizeof(resp[0]); i++) {
        mock_reset();
        mock_script_str(resp[i]);
        int32_t rc = run_default();
        if (rc != FOTA_NO_UPDATE) {
            fail_msg("response #%zu: %s", i, fota_result_str(rc));
        }
        assert_int_equal(g_flash.init_calls, 0);
        fota_progress_t p;
        progress(&p);
        assert_int_equal(p.platform_code, 0);
        assert_int_equal(p.bytes_written, 0);
    }
}

static void platform_refusal_sets_platform_code(void **state) {
    (void)state;
    mock_script_str("HTTP/1.1 409 Conflict\r\nContent-Type: application/json\r\nContent-Length: 37\r\n\r\n"
                    "{\"code\":40,\"msg\":\"too many requests\"}");
    assert_int_equal(run_default(), FOTA_ERR_PLATFORM);
    assert_int_equal(g_flash.init_calls, 0);
    fota_progress_t p;
    progress(&p);
    assert_int_equal(p.state, FOTA_STATE_IDLE);
    assert_int_equal(p.http_status, 409);
    assert_int_equal(p.platform_code, 40);
    assert_int_equal(p.bytes_written, 0);
    assert_int_equal(p.total, 0);
}

static void platform_code_27_is_no_update(void **state) {
    (void)state;
    mock_conn_t *c = mock_script_str("HTTP/1.1 409 Conflict\r\nTransfer-Encoding: chunked\r\n\r\n"
                                     "6\r\n{\"code\r\n7\r\n\":27,\"m\r\n6\r\nsg\":\"\"\r\n1\r\n}\r\n0\r\n\r\n");
    c->max_piece = 3;
    assert_int_equal(run_default(), FOTA_NO_UPDATE);
    fota_progress_t p;
    progress(&p);
    assert_int_equal(p.http_status, 409);
    assert_int_equal(p.platform_code, 27);
}

static void other_platform_codes_are_platform_errors(void **state) {
    (void)state;
    static const int32_t codes[] = {3, 17, 21, 25, 26, 43, -1};
    for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
        mock_reset();
        char resp[200];
        char body[64];
        int bl = snprintf(body, sizeof(body), "{\"code\":%d}", (int)codes[i]);
        snprintf(resp, sizeof(resp), "HTTP/1.1 403 Forbidden\r\nContent-Length: %d\r\n\r\n%s", bl, body);
        mock_script_str(resp);
        assert_int_equal(run_default(), FOTA_ERR_PLATFORM);
        fota_progress_t p;
        progress(&p);
        assert_int_equal(p.platform_code, codes[i]);
    }
}

/* ------------------------------------------------------------------ bad responses (4) */

static void bad_responses(void **state) {
    (void)state;
    static const char *const resp[] = {
        "HELLO\r\n\r\n",
        "HTTP/1.1 2000 OK\r\n\r\n",
        "HTTP/1.1 204 No Content\r\n\r\n",
        "HTTP/1.1 201 Created\r\nContent-Length: 3\r\n\r\nabc",
        "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\nabc",
        "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
        "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 1-4/5\r\nContent-Length: 4\r\n\r\nello",
        "HTTP/1.1 206 Partial Content\r\nContent-Length: 5\r\n\r\nhello",
        "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 100 Continue\r\n\r\n"
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    };
    for (size_t i = 0; i < sizeof(resp) / sizeof(resp[0]); i++) {
        mock_reset();
        mock_script_str(resp[i]);
        int32_t rc = run_default();
        if (rc != FOTA_ERR_RESPONSE) {
            fail_msg("response #%zu: %s", i, fota_result_str(rc));
        }
        assert_int_equal(g_flash.end_commit, 0);
    }
}

static void empty_body_read_until_close_is_bad_response(void **state) {
    (void)state;
    mock_script_str("HTTP/1.0 200 OK\r\n\r\n");
    assert_int_equal(run_default(), FOTA_ERR_RESPONSE);
    /* init may have happened (length unknown); then end(false): mock_check. */
    assert_int_equal(g_flash.end_commit, 0);
}

static void head_larger_than_the_buffer_is_bad_response(void **state) {
    (void)state;
    char *resp = malloc(FOTA_RX_BUF * 2);
    assert_non_null(resp);
    strcpy(resp, "HTTP/1.1 200 OK\r\nX-Padding: ");
    size_t n = strlen(resp);
    memset(resp + n, 'p', FOTA_RX_BUF);
    strcpy(resp + n + FOTA_RX_BUF, "\r\nContent-Length: 1\r\n\r\nx");
    mock_script_str(resp);
    free(resp);
    assert_int_equal(run_default(), FOTA_ERR_RESPONSE);
    assert_int_equal(g_flash.init_calls, 0);
}

/* The complement of the test above: a head just shorter than FOTA_RX_BUF
   fits, so the header's FOTA_RX_BUF (chosen by the build's macros) is the
   library's receive buffer, not a smaller one. */
static void head_that_fits_the_buffer_is_accepted(void **state) {
    (void)state;
    static const char start[] = "HTTP/1.1 200 OK\r\nX-Padding: ";
    static const char end[] = "\r\nContent-Length: 1\r\n\r\n";
    char *resp = malloc(FOTA_RX_BUF + 2);
    assert_non_null(resp);
    size_t pad = FOTA_RX_BUF - (sizeof start - 1) - (sizeof end - 1);
    strcpy(resp, start);
    memset(resp + sizeof start - 1, 'p', pad);
    strcpy(resp + sizeof start - 1 + pad, end);
    strcat(resp, "x");
    mock_script_str(resp);
    free(resp);
    assert_int_equal(run_default(), FOTA_OK);
    assert_int_equal(g_flash.written, 1);
    assert_int_equal(g_flash.image[0], 'x');
}

static void bad_chunk_mid_body_discards_the_image(void **state) {
    (void)state;
    mock_script_str("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nQ\r\n");
    assert_int_equal(run_default(), FOTA_ERR_RESPONSE);
    assert_int_equal(g_flash.init_ok, 1);
    assert_int_equal(g_flash.end_discard, 1);
}

/* ------------------------------------------------------------------ network failures */

static void refused_connection_is_connect_error(void **state) {
    (void)state;
    g_net.connect_ret = -1;
    assert_int_equal(run_default(), FOTA_ERR_CONNECT);
    assert_int_equal(g_net.connect_calls, 1);
    assert_int_equal(g_net.close_calls, 0);
    assert_int_equal(g_flash.init_calls, 0);
    g_net.connect_ret = INT32_MIN;
    g_net.connect_calls = 0;
    assert_int_equal(run_default(), FOTA_ERR_CONNECT);
}

static void close_before_the_head_is_disconnected(void **state) {
    (void)state;
    mock_script_str("HTTP/1.1 200 OK\r\nContent-Len");
    assert_int_equal(run_default(), FOTA_ERR_DISCONNECTED);
    assert_int_equal(g_flash.init_calls, 0);
}

static void close_mid_body_is_disconnected_and_discards(void **state) {
    (void)state;
    mock_fill_image(g_img, 10000, 7);
    mock_conn_t *c = mock_script_image(g_img, 10000);
    c->len -= 3000; /* the server stops 3000 bytes short */
    fota_opts_t o;
    mock_opts(&o);
    o.max_retries = 0;
    assert_int_equal(run(&o), FOTA_ERR_DISCONNECTED);
    assert_int_equal(g_flash.init_ok, 1);
    assert_int_equal(g_flash.end_discard, 1);
    fota_progress_t p;
    progress(&p);
    assert_int_equal(p.total, 10000);
    assert_true(p.bytes_written <= 7000);
}

static void receive_error_is_disconnected(void **state) {
    (void)state;
    /* Before the head. */
    mock_conn_t *c = mock_script_str("HTTP/1.1 2");
    c->end = MOCK_END_ERROR;
    assert_int_equal(run_default(), FOTA_ERR_DISCONNECTED);
    /* In the body. */
    mock_reset();
    c = mock_script_str("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello");
    c->end = MOCK_END_ERROR;
    c->end_error = -1;
    fota_opts_t o;
    mock_opts(&o);
    o.max_retries = 0;
    assert_int_equal(run(&o), FOTA_ERR_DISCONNECTED);
    assert_int_equal(g_flash.end_discard, 1);
}

static void recv_returning_more_than_asked_is_an_error(void **state) {
    (void)state;
    static const size_t at[] = {0, 10, 60}; /* in the head, in the body */
    for (size_t i = 0; i < 3; i++) {
        mock_reset();
        mock_fill_image(g_img, 5000, 8);
        mock_conn_t *c = mock_script_image(g_img, 5000);
        c->max_piece = 10;
        c->misbehave = MOCK_RECV_TOO_MANY;
        c->misbehave_at = at[i];
        fota_opts_t o;
        mock_opts(&o);
        o.max_retries = 0;
        int32_t rc = run(&o);
        if (rc != FOTA_ERR_DISCONNECTED) {
            fail_msg("misbehaving from byte %zu: %s", at[i], fota_result_str(rc));
        }
        assert_int_equal(g_flash.end_commit, 0);
    }
}

static void recv_returning_weird_negatives_is_an_error(void **state) {
    (void)state;
    static const int32_t weird[] = {-1, -2, -12, -12345, INT32_MIN};
    for (size_t i = 0; i < sizeof(weird) / sizeof(weird[0]); i++) {
        mock_reset();
        mock_fill_image(g_img, 3000, 9);
        mock_conn_t *c = mock_script_image(g_img, 3000);
        c->max_piece = 100;
        c->misbehave = MOCK_RECV_WEIRD_NEGATIVE;
        c->misbehave_at = 500;
        c->weird = weird[i];
        fota_opts_t o;
        mock_opts(&o);
        o.max_retries = 0;
        int32_t rc = run(&o);
        if (rc != FOTA_ERR_DISCONNECTED) {
            fail_msg("recv returning %d: %s", (int)weird[i], fota_result_str(rc));
        }
        assert_int_equal(g_flash.end_discard, 1);
    }
}

static void misbehaving_send_is_an_error(void **state) {
    (void)state;
    static const mock_send_mode_t modes[] = {MOCK_SEND_TOO_MANY, MOCK_SEND_ZERO, MOCK_SEND_ERROR};
    for (size_t i = 0; i < 3; i++) {
        mock_reset();
        g_net.send_mode = modes[i];
        mock_script_str("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello");
        int32_t rc = run_default();
        if (rc != FOTA_ERR_DISCONNECTED) {
            fail_msg("send mode %d: %s", (int)modes[i], fota_result_str(rc));
        }
        assert_int_equal(g_flash.init_calls, 0);
    }
}

/* ------------------------------------------------------------------ timeouts (7) */

static void silent_server_hits_the_idle_timeout(void **state) {
    (void)state;
    mock_conn_t *c = mock_script_str("");
    c->end = MOCK_END_WOULD_BLOCK;
    fota_opts_t o;
    mock_opts(&o);
    o.idle_timeout_ms = 5000;
    uint32_t t0 = g_sys.now;
    assert_int_equal(run(&o), FOTA_ERR_TIMEOUT);
    assert_int_equal(g_flash.init_calls, 0);
    assert_in_range(g_sys.now - t0, 5000, 5000 + FOTA_ABORT_SLICE_MS);
    assert_in_range(g_net.max_recv_timeout, 1, FOTA_ABORT_SLICE_MS);
}

static void send_blocked_forever_times_out(void **state) {
    (void)state;
    g_net.send_would_block = UINT32_MAX;
    mock_script_str("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello");
    fota_opts_t o;
    mock_opts(&o);
    o.idle_timeout_ms = 3000;
    assert_int_equal(run(&o), FOTA_ERR_TIMEOUT);
    assert_int_equal(g_flash.init_calls, 0);
    assert_in_range(g_net.send_calls, 3000 / FOTA_ABORT_SLICE_MS, 3000 / FOTA_ABORT_SLICE_MS + 4);
}

static void stall_mid_body_times_out_and_discards(void **state) {
    (void)state;
    mock_fill_image(g_img, 4000, 10);
    mock_conn_t *c = mock_script_image(g_img, 4000);
    c->len -= 1000;
    c->end = MOCK_END_WOULD_BLOCK;
    fota_opts_t o;
    mock_opts(&o);
    o.idle_timeout_ms = 1000;
    assert_int_equal(run(&o), FOTA_ERR_TIMEOUT);
    assert_int_equal(g_flash.end_discard, 1);
}

static void stuck_clock_still_times_out(void **state) {
    (void)state;
    g_sys.frozen = true;
    mock_conn_t *c = mock_script_str("HTTP/1.1 200 OK\r\n");
    c->end = MOCK_END_WOULD_BLOCK;
    fota_opts_t o;
    mock_opts(&o);
    o.idle_timeout_ms = 2000;
    assert_int_equal(run(&o), FOTA_ERR_TIMEOUT);
    /* About idle_timeout / slice waits, not an endless loop. */
    assert_in_range(g_net.recv_calls, 2000 / FOTA_ABORT_SLICE_MS, 2000 / FOTA_ABORT_SLICE_MS + 4);
}

static void trickling_server_hits_the_overall_deadline(void **state) {
    (void)state;
    mock_fill_image(g_img, 100000, 11);
    mock_conn_t *c = mock_script_image(g_img, 100000);
    c->max_piece = 1;
    g_sys.step = 1; /* every clock read costs 1 ms: ~ a byte every few ms */
    fota_opts_t o;
    mock_opts(&o);
    o.timeout_ms = 3000;
    assert_int_equal(run(&o), FOTA_ERR_TIMEOUT);
    assert_int_equal(g_flash.end_discard, 1);
}

static void flash_busy_forever_hits_the_deadline(void **state) {
    (void)state;
    g_flash.done_busy = INT32_MAX;
    mock_script_str("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello");
    fota_opts_t o;
    mock_opts(&o);
    o.timeout_ms = 1000;
    assert_int_equal(run(&o), FOTA_ERR_TIMEOUT);
    assert_int_equal(g_flash.end_discard, 1);
    assert_in_range(g_sys.sleep_calls, 1, 1000 / FOTA_DONE_POLL_MS + 1);
}

/* ------------------------------------------------------------------ flash failures (8) */

static void init_failure_is_flash_error_without_end(void **state) {
    (void)state;
    g_flash.init_ret = -1;
    mock_script_str("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello");
    assert_int_equal(run_default(), FOTA_ERR_FLASH);
    assert_int_equal(g_flash.init_calls, 1);
    assert_int_equal(g_flash.write_calls, 0);
    assert_int_equal(g_flash.end_calls, 0);
}

static void nth_write_failure_discards_the_image(void **state) {
    (void)state;
    for (int n = 1; n <= 3; n++) {
        mock_reset();
        g_flash.fail_write_at = n;
        g_flash.fail_write_ret = n == 3 ? INT32_MIN : -5;
        mock_fill_image(g_img, 5000, 12);
        mock_script_image(g_img, 5000)->max_piece = 1000;
        assert_int_equal(run_default(), FOTA_ERR_FLASH);
        assert_int_equal(g_flash.write_calls, n); /* nothing after the failure */
        assert_int_equal(g_flash.end_discard, 1);
    }
}

static void done_failure_discards_the_image(void **state) {
    (void)state;
    g_flash.done_busy = 2;
    g_flash.done_final = -3;
    mock_script_str("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello");
    assert_int_equal(run_default(), FOTA_ERR_FLASH);
    assert_int_equal(g_flash.done_calls, 3);
    assert_int_equal(g_flash.end_discard, 1);
}

static void failing_commit_is_flash_error_and_end_is_not_repeated(void **state) {
    (void)state;
    g_flash.end_ret = -1;
    mock_script_str("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello");
    mock_cb_t cb;
    fota_opts_t o;
    mock_opts(&o);
    int32_t rc = mock_request(&o, &cb);
    assert_int_equal(rc, FOTA_ERR_FLASH);
    assert_int_equal(cb.calls, 1);
    assert_int_equal(cb.last, FOTA_ERR_FLASH);
    /* end(true) was tried once, and not followed by end(false). */
    assert_int_equal(g_flash.end_calls, 1);
    assert_int_equal(g_flash.end_commit, 1);
    assert_int_equal(g_flash.end_discard, 0);
    assert_int_equal(g_net.close_calls, g_net.connect_ok);
}

/* ------------------------------------------------------------------ too large (9) */

static void content_length_above_max_len_fails_before_flash(void **state) {
    (void)state;
    mock_fill_image(g_img, 2000, 13);
    mock_script_image(g_img, 2000);
    fota_opts_t o;
    mock_opts(&o);
    o.storage.max_len = 1999;
    assert_int_equal(run(&o), FOTA_ERR_TOO_LARGE);
    assert_int_equal(g_flash.init_calls, 0);

    /* Exactly max_len fits. */
    mock_reset();
    mock_script_image(g_img, 2000);
    o.storage.max_len = 2000;
    assert_int_equal(run(&o), FOTA_OK);

    /* A length beyond 32 bits. */
    mock_reset();
    mock_script_str("HTTP/1.1 200 OK\r\nContent-Length: 4294967296\r\n\r\nabc");
    o.storage.max_len = 0; /* no limit, still too large for the 32-bit API */
    assert_int_equal(run(&o), FOTA_ERR_TOO_LARGE);
    assert_int_equal(g_flash.init_calls, 0);
}

static void growing_chunked_body_stops_at_max_len(void **state) {
    (void)state;
    mock_fill_image(g_img, 10000, 14);
    mock_script_chunked(g_img, 10000, 500);
    fota_opts_t o;
    mock_opts(&o);
    o.storage.max_len = 4000;
    assert_int_equal(run(&o), FOTA_ERR_TOO_LARGE);
    assert_int_equal(g_flash.end_discard, 1);
    assert_true(g_flash.written <= 4000);
}

/*
 * A connection closed after 6000 of 10000 body bytes: with max_retries 1 the
 * library reconnects with "Range: bytes=6000-", accepts the matching 206 and
 * commits the whole image; progress counts one retry.
 */
static void dropped_download_resumes_with_range(void **state) {
    (void)state;
    size_t len = 10000, cut = 6000;
    mock_fill_image(g_img, len, 24);
    /* The ETag proves that the 206 continues the same image. */
    char resp[256];
    int h = snprintf(resp, sizeof(resp), "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\nETag: \"e1\"\r\n\r\n", len);
    uint8_t both[16384];
    memcpy(both, resp, (size_t)h);
    memcpy(both + h, g_img, cut);
    mock_script(both, (size_t)h + cut); /* closes after 6000 body bytes */
    h = snprintf(resp, sizeof(resp),
                 "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes %zu-%zu/%zu\r\n"
                 "Content-Length: %zu\r\nETag: \"e1\"\r\n\r\n",
                 cut, len - 1, len, len - cut);
    memcpy(both, resp, (size_t)h);
    memcpy(both + h, g_img + cut, len - cut);
    mock_script(both, (size_t)h + len - cut);
    fota_opts_t o;
    mock_opts(&o);
    o.max_retries = 1;
    o.retry_delay_ms = 1;
    mock_cb_t cb;
    int32_t rc = mock_request(&o, &cb);
    if (rc != FOTA_OK) {
        fail_msg("dropped at %zu of %zu with max_retries 1: %s, %d connect(s) (expected FOTA_OK after a "
                 "Range request)",
                 cut, len, fota_result_str(rc), g_net.connect_calls);
    }
    mock_check(rc, &cb);
    mock_check_image(g_img, len);
    assert_non_null(strstr(mock_sent(1), "\r\nRange: bytes=6000-\r\nIf-Range: \"e1\"\r\n"));
    fota_progress_t p;
    fota_get_progress(&p);
    assert_int_equal(p.retries, 1);
}

#define T(f) cmocka_unit_test_setup(f, setup)

int main(void) {
    const struct CMUnitTest tests[] = {
        T(dropped_download_resumes_with_range),
        T(content_length_image_is_written_and_committed),
        T(one_mebibyte_in_many_splittings),
        T(granularity_256_with_odd_splits),
        T(granularity_with_a_chunked_body),
        T(chunked_framing_overhead_does_not_fill_the_buffer),
        T(chunked_one_mebibyte_in_1k_chunks),
        T(granularity_4096_blocks_fit),
        T(chunked_body_in_large_chunks),
        T(body_until_close_without_length),
        T(interim_1xx_responses_are_skipped),
        T(whole_image_as_206_is_accepted),
        T(bytes_past_content_length_are_ignored),
        T(done_busy_then_ok),
        T(partial_sends_and_would_block_are_retried),
        T(clock_wrap_around_is_harmless),
        T(redirect_is_followed_when_allowed),
        T(status_300_and_above_is_no_update),
        T(platform_refusal_sets_platform_code),
        T(platform_code_27_is_no_update),
        T(other_platform_codes_are_platform_errors),
        T(bad_responses),
        T(empty_body_read_until_close_is_bad_response),
        T(head_larger_than_the_buffer_is_bad_response),
        T(head_that_fits_the_buffer_is_accepted),
        T(bad_chunk_mid_body_discards_the_image),
        T(refused_connection_is_connect_error),
        T(close_before_the_head_is_disconnected),
        T(close_mid_body_is_disconnected_and_discards),
        T(receive_error_is_disconnected),
        T(recv_returning_more_than_asked_is_an_error),
        T(recv_returning_weird_negatives_is_an_error),
        T(misbehaving_send_is_an_error),
        T(silent_server_hits_the_idle_timeout),
        T(send_blocked_forever_times_out),
        T(stall_mid_body_times_out_and_discards),
        T(stuck_clock_still_times_out),
        T(trickling_server_hits_the_overall_deadline),
        T(flash_busy_forever_hits_the_deadline),
        T(init_failure_is_flash_error_without_end),
        T(nth_write_failure_discards_the_image),
        T(done_failure_discards_the_image),
        T(failing_commit_is_flash_error_and_end_is_not_repeated),
        T(content_length_above_max_len_fails_before_flash),
        T(growing_chunked_body_stops_at_max_len),
    };
    return cmocka_run_group_tests_name("download", tests, NULL, NULL);
}
