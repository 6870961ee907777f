/*
 * fota_request() before any successful fota_init(): the hook table is global
 * state, so this runs in its own process.
 */
#include "mocks.h"

#include <string.h>

static void request_before_init_is_invalid_arg(void **state) {
    (void)state;
    fota_opts_t opts;
    mock_opts(&opts);
    mock_cb_t cb;
    int32_t rc = mock_request(&opts, &cb);
    assert_int_equal(rc, FOTA_ERR_INVALID_ARG);
    assert_int_equal(cb.calls, 1);
    assert_int_equal(cb.last, FOTA_ERR_INVALID_ARG);
    /* Without a callback too. */
    assert_int_equal(fota_request(NULL, NULL, &opts), FOTA_ERR_INVALID_ARG);
    /* NULL opts before init. */
    rc = mock_request(NULL, &cb);
    assert_int_equal(rc, FOTA_ERR_INVALID_ARG);
    assert_int_equal(cb.calls, 1);
    assert_int_equal(cb.last, FOTA_ERR_INVALID_ARG);
}

static void the_rest_of_the_api_works_before_init(void **state) {
    (void)state;
    fota_abort(); /* nothing runs: no effect */
    fota_progress_t p;
    memset(&p, 0xff, sizeof(p));
    fota_get_progress(&p);
    assert_int_equal(p.state, FOTA_STATE_IDLE);
    assert_int_equal(p.bytes_written, 0);
    assert_int_equal(p.total, 0);
    assert_int_equal(p.retries, 0);
    assert_int_equal(p.http_status, 0);
    assert_int_equal(p.platform_code, 0);
    assert_int_equal(p.resumed_from, 0);
    assert_int_equal(p.state_saves, 0);
    fota_get_progress(NULL);
    /* No hooks to forget a resume record with. */
    assert_int_equal(fota_state_discard(), FOTA_ERR_INVALID_ARG);
    assert_string_equal(fota_result_str(FOTA_OK), "FOTA_OK");
    assert_int_equal(fota_result_libfota(FOTA_NO_UPDATE), 4);
}

static void failed_init_leaves_the_library_uninitialised(void **state) {
    (void)state;
    fota_opts_t opts;
    mock_opts(&opts);
    mock_cb_t cb;

    assert_int_equal(fota_init(NULL), FOTA_ERR_INVALID_ARG);
    assert_int_equal(mock_request(&opts, &cb), FOTA_ERR_INVALID_ARG);
    assert_int_equal(cb.calls, 1);

    fota_platform_t p;
    mock_platform(&p);
    p.net.recv = NULL;
    assert_int_equal(fota_init(&p), FOTA_ERR_INVALID_ARG);
    assert_int_equal(mock_request(&opts, &cb), FOTA_ERR_INVALID_ARG);
    assert_int_equal(cb.calls, 1);
    assert_int_equal(g_net.connect_calls, 0);
}

static void init_then_request_works(void **state) {
    (void)state;
    mock_reset(); /* calls fota_init() */
    static const char image[] = "the image";
    mock_script_image((const uint8_t *)image, sizeof(image) - 1);
    fota_opts_t opts;
    mock_opts(&opts);
    mock_cb_t cb;
    int32_t rc = mock_request(&opts, &cb);
    assert_int_equal(rc, FOTA_OK);
    mock_check(rc, &cb);
    mock_check_image((const uint8_t *)image, sizeof(image) - 1);
    /* NULL opts after init is still invalid, and touches nothing. */
    mock_reset();
    rc = mock_request(NULL, &cb);
    assert_int_equal(rc, FOTA_ERR_INVALID_ARG);
    mock_check(rc, &cb);
    mock_check_no_traffic();
}

int main(void) {
    /* Order matters: everything before init_then_request_works runs uninitialised. */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(request_before_init_is_invalid_arg),
        cmocka_unit_test(the_rest_of_the_api_works_before_init),
        cmocka_unit_test(failed_init_leaves_the_library_uninitialised),
        cmocka_unit_test(init_then_request_works),
    };
    return cmocka_run_group_tests_name("uninit", tests, NULL, NULL);
}
