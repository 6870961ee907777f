/*
 * The C API surface: result tables and strings, constants, fota_opts_init()
 * defaults, NULL and invalid arguments for every exported function, hook
 * table checks in fota_init(), option validation (URL, strings, headers,
 * body, granularity) and how the request is composed (URL, platform query,
 * method, headers, body, port).
 */
#include "mocks.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The numbers are part of the ABI. */
_Static_assert(FOTA_OK == 0, "code");
_Static_assert(FOTA_ERR_CONNECT == 1, "code");
_Static_assert(FOTA_ERR_URL == 2, "code");
_Static_assert(FOTA_ERR_DISCONNECTED == 3, "code");
_Static_assert(FOTA_ERR_RESPONSE == 4, "code");
_Static_assert(FOTA_ERR_PLATFORM_PARAM == 5, "code");
_Static_assert(FOTA_NO_UPDATE == 6, "code");
_Static_assert(FOTA_ERR_TIMEOUT == 7, "code");
_Static_assert(FOTA_ERR_FLASH == 8, "code");
_Static_assert(FOTA_ERR_TOO_LARGE == 9, "code");
_Static_assert(FOTA_ERR_VERIFY == 10, "code");
_Static_assert(FOTA_ERR_TLS == 11, "code");
_Static_assert(FOTA_ERR_ABORTED == 12, "code");
_Static_assert(FOTA_ERR_BUSY == 13, "code");
_Static_assert(FOTA_ERR_INVALID_ARG == 14, "code");
_Static_assert(FOTA_ERR_PLATFORM == 15, "code");
_Static_assert(FOTA_NET_WOULD_BLOCK == -11, "-EAGAIN");
_Static_assert(FOTA_LOG_ERROR == 1 && FOTA_LOG_WARN == 2 && FOTA_LOG_INFO == 3 && FOTA_LOG_DEBUG == 4,
               "log levels");
_Static_assert(FOTA_STATE_IDLE == 0 && FOTA_STATE_FINISHING == 5, "states");

static int setup(void **state) {
    (void)state;
    mock_reset();
    return 0;
}

/* A request that must fail before any traffic. */
static void expect_no_traffic(const fota_opts_t *opts, int32_t expected) {
    mock_cb_t cb;
    int32_t rc = mock_request(opts, &cb);
    assert_int_equal(rc, expected);
    mock_check(rc, &cb);
    mock_check_no_traffic();
}

/* A request answered "404": returns what connection 0 sent. */
static const char *sent_by(const fota_opts_t *opts, int32_t expected) {
    mock_script_str("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
    mock_cb_t cb;
    int32_t rc = mock_request(opts, &cb);
    assert_int_equal(rc, expected);
    mock_check(rc, &cb);
    return mock_sent(0);
}

/* ------------------------------------------------------------------ result tables */

static void result_str_names_every_code(void **state) {
    (void)state;
    static const char *const names[] = {
        "FOTA_OK",          "FOTA_ERR_CONNECT",    "FOTA_ERR_URL",         "FOTA_ERR_DISCONNECTED",
        "FOTA_ERR_RESPONSE", "FOTA_ERR_PLATFORM_PARAM", "FOTA_NO_UPDATE",   "FOTA_ERR_TIMEOUT",
        "FOTA_ERR_FLASH",   "FOTA_ERR_TOO_LARGE",  "FOTA_ERR_VERIFY",      "FOTA_ERR_TLS",
        "FOTA_ERR_ABORTED", "FOTA_ERR_BUSY",       "FOTA_ERR_INVALID_ARG", "FOTA_ERR_PLATFORM",
    };
    for (int32_t c = 0; c <= 15; c++) {
        const char *s = fota_result_str(c);
        assert_non_null(s);
        assert_string_equal(s, names[c]);
        assert_ptr_equal(s, fota_result_str(c)); /* static */
    }
    static const int32_t unknown[] = {-1, 16, 99, -11, INT32_MIN, INT32_MAX};
    for (size_t i = 0; i < sizeof(unknown) / sizeof(unknown[0]); i++) {
        assert_string_equal(fota_result_str(unknown[i]), "FOTA_ERR_UNKNOWN");
    }
}

static void result_libfota_table(void **state) {
    (void)state;
    static const int32_t expected[16] = {0, 1, 2, 3, 4, 5, 4, 4, 4, 4, 4, 1, 4, 4, 4, 4};
    for (int32_t c = 0; c <= 15; c++) {
        assert_int_equal(fota_result_libfota(c), expected[c]);
    }
    /* Unknown codes still give a libfota number (0-5). */
    static const int32_t unknown[] = {-1, 16, 99, INT32_MIN, INT32_MAX};
    for (size_t i = 0; i < sizeof(unknown) / sizeof(unknown[0]); i++) {
        int32_t l = fota_result_libfota(unknown[i]);
        assert_in_range(l, 0, 5);
    }
}

/* ------------------------------------------------------------------ opts, progress */

static void opts_init_sets_the_documented_defaults(void **state) {
    (void)state;
    fota_opts_t o;
    memset(&o, 0xa5, sizeof(o));
    fota_opts_init(&o);
    assert_null(o.url);
    assert_null(o.version);
    assert_int_equal(o.timeout_ms, FOTA_DEFAULT_TIMEOUT_MS);
    assert_int_equal(o.timeout_ms, 300000);
    assert_null(o.project_key);
    assert_null(o.imei);
    assert_null(o.mac);
    assert_null(o.uid);
    assert_null(o.firmware_name);
    assert_null(o.server_cert);
    assert_int_equal(o.server_cert_len, 0);
    assert_null(o.client_cert);
    assert_int_equal(o.client_cert_len, 0);
    assert_null(o.client_key);
    assert_int_equal(o.client_key_len, 0);
    assert_null(o.client_password);
    assert_null(o.method);
    assert_null(o.headers);
    assert_null(o.body);
    assert_int_equal(o.body_len, 0);
    assert_int_equal(o.storage.address, 0);
    assert_int_equal(o.storage.max_len, 0);
    assert_null(o.storage.path);
    assert_null(o.storage.param1);
    assert_int_equal(o.port, 0);
    assert_true(o.show_url);
    assert_int_equal(o.idle_timeout_ms, FOTA_DEFAULT_IDLE_TIMEOUT_MS);
    assert_int_equal(o.max_retries, FOTA_DEFAULT_MAX_RETRIES);
    assert_int_equal(o.max_redirects, 0);
    assert_null(o.progress_cb);
    assert_null(o.progress_user);
}

static void null_out_parameters_are_ignored(void **state) {
    (void)state;
    fota_opts_init(NULL);
    fota_get_progress(NULL);
    fota_abort(); /* nothing running */
}

static void request_with_null_opts_is_invalid_arg(void **state) {
    (void)state;
    mock_cb_t cb;
    int32_t rc = mock_request(NULL, &cb);
    assert_int_equal(rc, FOTA_ERR_INVALID_ARG);
    mock_check(rc, &cb);
    mock_check_no_traffic();
    /* And with a NULL callback. */
    assert_int_equal(fota_request(NULL, NULL, NULL), FOTA_ERR_INVALID_ARG);
}

static void request_without_callback_returns_the_code(void **state) {
    (void)state;
    static const char image[] = "abc";
    mock_script_image((const uint8_t *)image, 3);
    fota_opts_t o;
    mock_opts(&o);
    assert_int_equal(fota_request(NULL, NULL, &o), FOTA_OK);
    mock_check_image((const uint8_t *)image, 3);
}

/* ------------------------------------------------------------------ fota_init */

static void init_null_is_invalid_arg(void **state) {
    (void)state;
    assert_int_equal(fota_init(NULL), FOTA_ERR_INVALID_ARG);
}

/* Every required hook, removed one at a time. */
static void init_without_a_required_hook_is_invalid_arg(void **state) {
    (void)state;
    for (int which = 0; which < 9; which++) {
        fota_platform_t p;
        mock_platform(&p);
        const char *name = "";
        switch (which) {
        case 0: p.net.connect = NULL; name = "net.connect"; break;
        case 1: p.net.send = NULL; name = "net.send"; break;
        case 2: p.net.recv = NULL; name = "net.recv"; break;
        case 3: p.net.close = NULL; name = "net.close"; break;
        case 4: p.flash.init = NULL; name = "flash.init"; break;
        case 5: p.flash.write = NULL; name = "flash.write"; break;
        case 6: p.flash.end = NULL; name = "flash.end"; break;
        case 7: p.sys.now_ms = NULL; name = "sys.now_ms"; break;
        case 8: p.sys.sleep_ms = NULL; name = "sys.sleep_ms"; break;
        }
        /* Point the table at other contexts: if it were installed, the
           request below would not reach g_net. */
        static mock_net_t other;
        p.net.ctx = &other;
        int32_t rc = fota_init(&p);
        if (rc != FOTA_ERR_INVALID_ARG) {
            fail_msg("fota_init without %s returned %d", name, (int)rc);
        }
    }
    /* The previous (complete) hooks are still installed. */
    static const char image[] = "xyz";
    mock_script_image((const uint8_t *)image, 3);
    fota_opts_t o;
    mock_opts(&o);
    mock_cb_t cb;
    int32_t rc = mock_request(&o, &cb);
    assert_int_equal(rc, FOTA_OK);
    mock_check(rc, &cb);
    assert_int_equal(g_net.connect_calls, 1);
}

static void optional_hooks_may_be_null(void **state) {
    (void)state;
    g_flash.no_done_hook = true;
    fota_platform_t p;
    mock_platform(&p);
    p.sys.log = NULL;
    p.sys.random = NULL;
    assert_null(p.flash.done);
    assert_int_equal(fota_init(&p), FOTA_OK);
    static const char image[] = "0123456789";
    mock_script_image((const uint8_t *)image, 10);
    fota_opts_t o;
    mock_opts(&o);
    mock_cb_t cb;
    int32_t rc = mock_request(&o, &cb);
    assert_int_equal(rc, FOTA_OK);
    mock_check(rc, &cb);
    mock_check_image((const uint8_t *)image, 10);
    assert_int_equal(g_flash.done_calls, 0);
    assert_int_equal(g_sys.log_lines, 0);
}

static void init_again_replaces_the_hooks(void **state) {
    (void)state;
    /* A second table whose ctx is a different (unscripted) network. */
    static mock_net_t other;
    memset(&other, 0, sizeof(other));
    other.cur = -1;
    other.connect_ret = -5; /* refuses */
    fota_platform_t p;
    mock_platform(&p);
    p.net.ctx = &other;
    assert_int_equal(fota_init(&p), FOTA_OK);
    fota_opts_t o;
    mock_opts(&o);
    mock_cb_t cb;
    assert_int_equal(mock_request(&o, &cb), FOTA_ERR_CONNECT);
    assert_int_equal(cb.calls, 1);
    assert_int_equal(other.connect_calls, 1);
    assert_int_equal(g_net.connect_calls, 0);
}

/* ------------------------------------------------------------------ invalid options */

static void body_null_with_nonzero_len_is_invalid_arg(void **state) {
    (void)state;
    fota_opts_t o;
    mock_opts(&o);
    o.body = NULL;
    o.body_len = 1;
    expect_no_traffic(&o, FOTA_ERR_INVALID_ARG);
    o.body_len = SIZE_MAX;
    expect_no_traffic(&o, FOTA_ERR_INVALID_ARG);
}

static void absurd_body_len_is_invalid_arg(void **state) {
    (void)state;
    static const uint8_t b[1] = {0};
    fota_opts_t o;
    mock_opts(&o);
    o.body = b;
    o.body_len = SIZE_MAX; /* larger than any object: must not be trusted */
    expect_no_traffic(&o, FOTA_ERR_INVALID_ARG);
}

static void invalid_write_granularity_is_invalid_arg(void **state) {
    (void)state;
    static const uint32_t bad[] = {3, 300, 1000, 8192, 0x80000000u, UINT32_MAX};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        mock_reset();
        g_flash.write_granularity = bad[i];
        fota_platform_t p;
        mock_platform(&p);
        assert_int_equal(fota_init(&p), FOTA_OK);
        mock_script_str("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx");
        fota_opts_t o;
        mock_opts(&o);
        expect_no_traffic(&o, FOTA_ERR_INVALID_ARG);
    }
}

static void non_utf8_url_is_url_error(void **state) {
    (void)state;
    fota_opts_t o;
    mock_opts(&o);
    o.url = "http://h/\xff";
    expect_no_traffic(&o, FOTA_ERR_URL);
    o.url = "http://h\xc3\x28/x";
    expect_no_traffic(&o, FOTA_ERR_URL);
}

static void absurdly_long_url_is_url_error(void **state) {
    (void)state;
    size_t n = 100 * 1024;
    char *url = malloc(n + 1);
    assert_non_null(url);
    memcpy(url, "http://h/", 9);
    memset(url + 9, 'a', n - 9);
    url[n] = 0;
    fota_opts_t o;
    mock_opts(&o);
    o.url = url;
    expect_no_traffic(&o, FOTA_ERR_URL);
    free(url);
}

static void url_length_limit_is_exact(void **state) {
    (void)state;
    char url[FOTA_URL_MAX + 2];
    memcpy(url, "http://h/", 9);
    memset(url + 9, 'a', FOTA_URL_MAX - 9);
    url[FOTA_URL_MAX] = 0; /* exactly FOTA_URL_MAX bytes: accepted */
    fota_opts_t o;
    mock_opts(&o);
    o.url = url;
    sent_by(&o, FOTA_NO_UPDATE);
    assert_int_equal(g_net.connect_calls, 1);

    mock_reset();
    url[FOTA_URL_MAX] = 'a';
    url[FOTA_URL_MAX + 1] = 0; /* one more: refused */
    expect_no_traffic(&o, FOTA_ERR_URL);
}

static void bad_and_unsupported_urls_are_url_errors(void **state) {
    (void)state;
    static const char *const bad[] = {
        "",
        "ftp://h/x",
        "http://",
        "http:///x",
        "not a url",
        "http://h:99999/x",
        "http://h:port/x",
        "http://h /x",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        mock_reset();
        fota_opts_t o;
        mock_opts(&o);
        o.url = bad[i];
        mock_cb_t cb;
        int32_t rc = mock_request(&o, &cb);
        if (rc != FOTA_ERR_URL) {
            fail_msg("url \"%s\": %s", bad[i], fota_result_str(rc));
        }
        mock_check(rc, &cb);
        mock_check_no_traffic();
    }
}

static int32_t fixed_random(void *ctx, uint8_t *buf, size_t len) {
    (void)ctx;
    memset(buf, 0x5a, len);
    return 0;
}

/* https is refused before any traffic without a random hook (14), then
 * without a CA (11); with the CA but a server that does not speak TLS, the
 * handshake fails with 11 and the flash is never touched. */
static void https_checks_come_before_traffic(void **state) {
    (void)state;
    fota_opts_t o;
    mock_opts(&o);
    o.url = "https://fw.example.com/app.bin";
    expect_no_traffic(&o, FOTA_ERR_INVALID_ARG);

    fota_platform_t p;
    mock_platform(&p);
    p.sys.random = fixed_random;
    assert_int_equal(fota_init(&p), FOTA_OK);
    expect_no_traffic(&o, FOTA_ERR_TLS);

    o.tls_insecure = true;
    mock_script_str("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx");
    mock_cb_t cb;
    int32_t rc = mock_request(&o, &cb);
    assert_int_equal(rc, FOTA_ERR_TLS);
    mock_check(rc, &cb);
    assert_int_equal(g_flash.init_calls, 0);
    assert_int_equal(fota_result_libfota(rc), 1);
}

static void host_too_long_for_connect_is_url_error(void **state) {
    (void)state;
    char url[400];
    memcpy(url, "http://", 7);
    memset(url + 7, 'h', 300);
    memcpy(url + 307, "/x", 3);
    fota_opts_t o;
    mock_opts(&o);
    o.url = url;
    expect_no_traffic(&o, FOTA_ERR_URL);
}

static void non_utf8_or_overlong_strings_are_invalid_arg(void **state) {
    (void)state;
    char *big = malloc(100 * 1024 + 1);
    assert_non_null(big);
    memset(big, '1', 100 * 1024);
    big[100 * 1024] = 0;
    for (int field = 0; field < 7; field++) {
        for (int kind = 0; kind < 2; kind++) {
            mock_reset();
            fota_opts_t o;
            mock_opts(&o);
            const char *v = kind == 0 ? "1.2.\xff" : big;
            switch (field) {
            case 0: o.version = v; break;
            case 1: o.project_key = v; break;
            case 2: o.imei = v; break;
            case 3: o.mac = v; break;
            case 4: o.uid = v; break;
            case 5: o.firmware_name = v; break;
            case 6: o.headers = v; break;
            }
            mock_cb_t cb;
            int32_t rc = mock_request(&o, &cb);
            if (rc != FOTA_ERR_INVALID_ARG) {
                fail_msg("field %d, %s: %s", field, kind == 0 ? "non-UTF-8" : "100 KB",
                         fota_result_str(rc));
            }
            mock_check(rc, &cb);
            mock_check_no_traffic();
        }
    }
    free(big);
}

static void header_injection_is_invalid_arg(void **state) {
    (void)state;
    static const char *const bad[] = {
        "X-A: 1\nInjected: yes",
        "X-A: 1\rInjected: yes",
        "X-A: 1\r\n\r\nGET /evil HTTP/1.1",
        "X-A: 1\r\n\r\n",
        "\r\n",
        "NoColon",
        ": empty name",
        "Bad Name: x",
        "X-A: a\x01" "b",
        "X-A: 1\r\nX-B",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        mock_reset();
        fota_opts_t o;
        mock_opts(&o);
        o.headers = bad[i];
        mock_cb_t cb;
        int32_t rc = mock_request(&o, &cb);
        if (rc != FOTA_ERR_INVALID_ARG) {
            fail_msg("headers #%zu: %s", i, fota_result_str(rc));
        }
        mock_check(rc, &cb);
        mock_check_no_traffic();
    }
}

static void invalid_method_is_invalid_arg(void **state) {
    (void)state;
    static const char *const bad[] = {"", "GE T", "GET\r\nX: y", "G(ET"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        mock_reset();
        fota_opts_t o;
        mock_opts(&o);
        o.method = bad[i];
        mock_cb_t cb;
        int32_t rc = mock_request(&o, &cb);
        if (rc != FOTA_ERR_INVALID_ARG) {
            fail_msg("method #%zu: %s", i, fota_result_str(rc));
        }
        mock_check(rc, &cb); /* also: no log line with CR/LF (log_bad == 0) */
        mock_check_no_traffic();
    }
}

/* ------------------------------------------------------------------ the request sent */

static void request_head_for_a_plain_get(void **state) {
    (void)state;
    fota_opts_t o;
    mock_opts(&o);
    const char *sent = sent_by(&o, FOTA_NO_UPDATE);
    assert_string_equal(g_net.hosts[0], "fw.example.com");
    assert_int_equal(g_net.ports[0], 80);
    assert_true(strncmp(sent, "GET /app.bin HTTP/1.1\r\n", 23) == 0);
    assert_non_null(strstr(sent, "\r\nHost: fw.example.com\r\n"));
    assert_non_null(strstr(sent, "\r\nUser-Agent: fota/"));
    /* Exactly one blank line, at the end: no body. */
    size_t n = strlen(sent);
    assert_true(n > 4);
    assert_string_equal(sent + n - 4, "\r\n\r\n");
    assert_ptr_equal(strstr(sent, "\r\n\r\n"), sent + n - 4);
    assert_null(strstr(sent, "Content-Length"));
}

static void request_with_method_headers_and_body(void **state) {
    (void)state;
    static const uint8_t body[] = {'a', 0, 'b', 0xff};
    fota_opts_t o;
    mock_opts(&o);
    o.method = "POST";
    o.headers = "X-Device: 42\r\nAuthorization: Bearer t";
    o.body = body;
    o.body_len = sizeof(body);
    g_net.send_max = 5; /* partial sends */
    mock_script_str("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
    mock_cb_t cb;
    int32_t rc = mock_request(&o, &cb);
    assert_int_equal(rc, FOTA_NO_UPDATE);
    mock_check(rc, &cb);
    const uint8_t *sent = g_net.sent;
    size_t n = g_net.sent_len;
    assert_true(strncmp((const char *)sent, "POST /app.bin HTTP/1.1\r\n", 24) == 0);
    assert_non_null(strstr((const char *)sent, "\r\nContent-Length: 4\r\n"));
    assert_non_null(strstr((const char *)sent, "\r\nX-Device: 42\r\nAuthorization: Bearer t\r\n\r\n"));
    assert_true(n > sizeof(body));
    assert_memory_equal(sent + n - sizeof(body), body, sizeof(body));
    assert_memory_equal(sent + n - sizeof(body) - 4, "\r\n\r\n", 4);
}

static void headers_ending_with_crlf_are_not_doubled(void **state) {
    (void)state;
    fota_opts_t o;
    mock_opts(&o);
    o.headers = "X-A: 1\r\n";
    const char *sent = sent_by(&o, FOTA_NO_UPDATE);
    size_t n = strlen(sent);
    assert_true(n > 12);
    assert_string_equal(sent + n - 12, "\r\nX-A: 1\r\n\r\n");
    assert_ptr_equal(strstr(sent, "\r\n\r\n"), sent + n - 4);
}

static void port_from_url_option_or_default(void **state) {
    (void)state;
    fota_opts_t o;
    mock_opts(&o);
    o.url = "http://h:8080/x";
    o.port = 81;
    const char *sent = sent_by(&o, FOTA_NO_UPDATE);
    assert_int_equal(g_net.ports[0], 8080);
    assert_non_null(strstr(sent, "\r\nHost: h:8080\r\n"));

    mock_reset();
    o.url = "http://h/x";
    o.port = 81;
    sent = sent_by(&o, FOTA_NO_UPDATE);
    assert_int_equal(g_net.ports[0], 81);
    assert_non_null(strstr(sent, "\r\nHost: h:81\r\n"));

    mock_reset();
    o.url = "http://[::1]:9000/x";
    o.port = 0;
    sent_by(&o, FOTA_NO_UPDATE);
    assert_string_equal(g_net.hosts[0], "::1");
    assert_int_equal(g_net.ports[0], 9000);
}

static void device_parameters_are_appended_to_a_custom_url(void **state) {
    (void)state;
    fota_opts_t o;
    mock_opts(&o);
    o.url = "http://h/fw?type=app";
    o.imei = "861234567890123";
    o.project_key = "KEY";
    o.firmware_name = "my fw/1";
    o.version = "1.2.3";
    const char *sent = sent_by(&o, FOTA_NO_UPDATE);
    assert_true(strncmp(sent,
                        "GET /fw?type=app&imei=861234567890123&project_key=KEY&firmware_name=my%20fw%2F1"
                        "&version=1.2.3 HTTP/1.1\r\n",
                        103) == 0);

    /* imei empty: mac; then uid. */
    mock_reset();
    mock_opts(&o);
    o.imei = "";
    o.mac = "AA:BB";
    o.uid = "U1";
    sent = sent_by(&o, FOTA_NO_UPDATE);
    assert_true(strncmp(sent, "GET /app.bin?mac=AA%3ABB HTTP/1.1\r\n", 35) == 0);
    mock_reset();
    mock_opts(&o);
    o.uid = "U1";
    sent = sent_by(&o, FOTA_NO_UPDATE);
    assert_true(strncmp(sent, "GET /app.bin?uid=U1 HTTP/1.1\r\n", 30) == 0);
}

static void verbatim_url_gets_no_parameters(void **state) {
    (void)state;
    fota_opts_t o;
    mock_opts(&o);
    o.url = "###http://h/x?a=1";
    o.imei = "861234567890123";
    o.version = "1.2.3";
    const char *sent = sent_by(&o, FOTA_NO_UPDATE);
    assert_true(strncmp(sent, "GET /x?a=1 HTTP/1.1\r\n", 21) == 0);
}

static void platform_url_carries_the_composed_query(void **state) {
    (void)state;
    fota_opts_t o;
    mock_opts(&o);
    o.url = NULL;
    o.project_key = "b0wlKEY";
    o.imei = "C81234567830";
    o.firmware_name = "fotademo_LuatOS-SoC_AIR601";
    o.version = "1025.1.0";
    const char *sent = sent_by(&o, FOTA_NO_UPDATE);
    assert_string_equal(g_net.hosts[0], "iot.openluat.com");
    assert_int_equal(g_net.ports[0], 80);
    static const char line[] =
        "GET /api/site/firmware_upgrade?imei=C81234567830&project_key=b0wlKEY"
        "&firmware_name=fotademo_LuatOS-SoC_AIR601&version=1025.1.0 HTTP/1.1\r\n";
    if (strncmp(sent, line, sizeof(line) - 1) != 0) {
        fail_msg("request sent:\n%s", sent);
    }
    assert_non_null(strstr(sent, "\r\nHost: iot.openluat.com\r\n"));
}

static void platform_parameters_are_checked_before_connecting(void **state) {
    (void)state;
    static const char *const bad_versions[] = {NULL, "", "1.2", "1.2.3.4", "a.b.c", "1..3", "1.2.",
                                               ".1.2", "1.2.3 ", "-1.2.3"};
    for (size_t i = 0; i < sizeof(bad_versions) / sizeof(bad_versions[0]); i++) {
        mock_reset();
        fota_opts_t o;
        mock_opts(&o);
        o.url = NULL;
        o.project_key = "KEY";
        o.version = bad_versions[i];
        mock_cb_t cb;
        int32_t rc = mock_request(&o, &cb);
        if (rc != FOTA_ERR_PLATFORM_PARAM) {
            fail_msg("version \"%s\": %s", bad_versions[i] ? bad_versions[i] : "(null)",
                     fota_result_str(rc));
        }
        mock_check(rc, &cb);
        mock_check_no_traffic();
    }
    static const char *const bad_keys[] = {NULL, ""};
    for (size_t i = 0; i < 2; i++) {
        mock_reset();
        fota_opts_t o;
        mock_opts(&o);
        o.url = NULL;
        o.project_key = bad_keys[i];
        o.version = "1.0.0";
        expect_no_traffic(&o, FOTA_ERR_PLATFORM_PARAM);
    }
}

static void show_url_false_keeps_device_ids_out_of_the_log(void **state) {
    (void)state;
    fota_opts_t o;
    mock_opts(&o);
    o.imei = "861234567890123";
    sent_by(&o, FOTA_NO_UPDATE);
    assert_true(g_sys.log_lines > 0);
    assert_true(mock_log_contains("861234567890123"));

    mock_reset();
    o.show_url = false;
    sent_by(&o, FOTA_NO_UPDATE);
    assert_false(mock_log_contains("861234567890123"));
}

/*
 * Regression: with show_url (the default) the method is logged
 * ("<method> <url>", FOTA_LOG_INFO); it was once logged before it was
 * validated, so a method holding CR LF reached the log hook, whose contract
 * (fota.h) is one line without a line terminator: log injection. The
 * method is now checked first.
 */
static void invalid_method_is_never_logged(void **state) {
    (void)state;
    fota_opts_t o;
    mock_opts(&o);
    o.method = "GET\r\nInjected: yes";
    mock_cb_t cb;
    int32_t rc = mock_request(&o, &cb);
    assert_int_equal(rc, FOTA_ERR_INVALID_ARG);
    if (g_sys.log_bad != 0) {
        fail_msg("%d log line(s) with CR/LF/NUL; log:\n%s", g_sys.log_bad, g_sys.log);
    }
    mock_check(rc, &cb);
}

/*
 * Regression: an invalid method ("GE T", "") was once refused only when the
 * request head was written, after net.connect() had succeeded. An argument
 * error must not open a connection (on a cellular module a connect costs
 * time, power and data).
 */
static void invalid_method_is_refused_before_connecting(void **state) {
    (void)state;
    fota_opts_t o;
    mock_opts(&o);
    o.method = "GE T";
    mock_cb_t cb;
    int32_t rc = mock_request(&o, &cb);
    assert_int_equal(rc, FOTA_ERR_INVALID_ARG);
    mock_check(rc, &cb);
    if (g_net.connect_calls != 0) {
        fail_msg("connect() called %d time(s) before an invalid method was refused", g_net.connect_calls);
    }
}

#define T(f) cmocka_unit_test_setup(f, setup)

int main(void) {
    const struct CMUnitTest tests[] = {
        T(invalid_method_is_never_logged),
        T(https_checks_come_before_traffic),
        T(invalid_method_is_refused_before_connecting),
        T(result_str_names_every_code),
        T(result_libfota_table),
        T(opts_init_sets_the_documented_defaults),
        T(null_out_parameters_are_ignored),
        T(request_with_null_opts_is_invalid_arg),
        T(request_without_callback_returns_the_code),
        T(init_null_is_invalid_arg),
        T(init_without_a_required_hook_is_invalid_arg),
        T(optional_hooks_may_be_null),
        T(init_again_replaces_the_hooks),
        T(body_null_with_nonzero_len_is_invalid_arg),
        T(absurd_body_len_is_invalid_arg),
        T(invalid_write_granularity_is_invalid_arg),
        T(non_utf8_url_is_url_error),
        T(absurdly_long_url_is_url_error),
        T(url_length_limit_is_exact),
        T(bad_and_unsupported_urls_are_url_errors),
        T(host_too_long_for_connect_is_url_error),
        T(non_utf8_or_overlong_strings_are_invalid_arg),
        T(header_injection_is_invalid_arg),
        T(invalid_method_is_invalid_arg),
        T(request_head_for_a_plain_get),
        T(request_with_method_headers_and_body),
        T(headers_ending_with_crlf_are_not_doubled),
        T(port_from_url_option_or_default),
        T(device_parameters_are_appended_to_a_custom_url),
        T(verbatim_url_gets_no_parameters),
        T(platform_url_carries_the_composed_query),
        T(platform_parameters_are_checked_before_connecting),
        T(show_url_false_keeps_device_ids_out_of_the_log),
    };
    return cmocka_run_group_tests_name("api", tests, NULL, NULL);
}
