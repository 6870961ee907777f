/*
 * Concurrency and re-entrancy: FOTA_ERR_BUSY from a second thread and from
 * inside callbacks and hooks, fota_abort() from the progress callback and
 * from another thread, fota_get_progress() and fota_init() while a request
 * runs, and a new request from the result callback (the lock is released
 * before the callback runs).
 */
#include "mocks.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static uint8_t g_img[64 * 1024];

static int setup(void **state) {
    (void)state;
    mock_reset();
    return 0;
}

/* ------------------------------------------------------------------ a gate between two threads */

typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool entered;  /* the request reached the blocking hook */
    bool released; /* the other thread let it go on */
    int blocked;   /* times the hook blocked (only the first time) */
} gate_t;

static gate_t g_gate;

static void gate_reset(void) {
    pthread_mutex_init(&g_gate.mu, NULL);
    pthread_cond_init(&g_gate.cv, NULL);
    g_gate.entered = false;
    g_gate.released = false;
    g_gate.blocked = 0;
}

/* Hook side: the first call announces itself and waits for the release. */
static void gate_block(void *arg) {
    (void)arg;
    pthread_mutex_lock(&g_gate.mu);
    if (g_gate.blocked++ == 0) {
        g_gate.entered = true;
        pthread_cond_broadcast(&g_gate.cv);
        while (!g_gate.released) {
            pthread_cond_wait(&g_gate.cv, &g_gate.mu);
        }
    }
    pthread_mutex_unlock(&g_gate.mu);
}

static void gate_wait_entered(void) {
    pthread_mutex_lock(&g_gate.mu);
    while (!g_gate.entered) {
        pthread_cond_wait(&g_gate.cv, &g_gate.mu);
    }
    pthread_mutex_unlock(&g_gate.mu);
}

static void gate_release(void) {
    pthread_mutex_lock(&g_gate.mu);
    g_gate.released = true;
    pthread_cond_broadcast(&g_gate.cv);
    pthread_mutex_unlock(&g_gate.mu);
}

/* The first request, on its own thread. */
typedef struct {
    fota_opts_t opts;
    mock_cb_t cb;
    int32_t rc;
} job_t;

static void *job_run(void *arg) {
    job_t *j = arg;
    j->rc = mock_request(&j->opts, &j->cb);
    return NULL;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ------------------------------------------------------------------ busy */

static void second_thread_gets_busy_at_once(void **state) {
    (void)state;
    gate_reset();
    mock_fill_image(g_img, 20000, 1);
    mock_script_image(g_img, 20000)->max_piece = 1000;
    g_flash.on_write = gate_block; /* the first request stops in its first write */

    job_t a;
    memset(&a, 0, sizeof(a));
    mock_opts(&a.opts);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, job_run, &a), 0);
    gate_wait_entered();

    /* While it is blocked: a second request from this thread. */
    fota_opts_t o;
    mock_opts(&o);
    mock_cb_t cb;
    double t0 = now_s();
    int32_t rc = mock_request(&o, &cb);
    double dt = now_s() - t0;
    assert_int_equal(rc, FOTA_ERR_BUSY);
    assert_int_equal(cb.calls, 1);
    assert_int_equal(cb.last, FOTA_ERR_BUSY);
    assert_true(dt < 0.5); /* at once, not after the first request */
    /* NULL opts while busy: busy or invalid, but the callback still runs once. */
    rc = mock_request(NULL, &cb);
    assert_true(rc == FOTA_ERR_BUSY || rc == FOTA_ERR_INVALID_ARG);
    assert_int_equal(cb.calls, 1);
    assert_int_equal(cb.last, rc);

    /* Progress from another task, mid-download. */
    fota_progress_t p;
    fota_get_progress(&p);
    assert_int_equal(p.state, FOTA_STATE_DOWNLOADING);
    assert_int_equal(p.total, 20000);
    assert_int_equal(g_net.connect_calls, 1); /* the busy request connected nowhere */
    assert_int_equal(g_flash.init_calls, 1);

    gate_release();
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(a.rc, FOTA_OK);
    mock_check(a.rc, &a.cb);
    mock_check_image(g_img, 20000);
}

static void init_while_running_leaves_the_running_request_alone(void **state) {
    (void)state;
    gate_reset();
    mock_script_str("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello");
    g_net.on_recv = gate_block;

    job_t a;
    memset(&a, 0, sizeof(a));
    mock_opts(&a.opts);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, job_run, &a), 0);
    gate_wait_entered();

    /* New hooks whose network refuses every connection. */
    static mock_net_t other;
    memset(&other, 0, sizeof(other));
    other.cur = -1;
    other.connect_ret = -1;
    fota_platform_t p;
    mock_platform(&p);
    p.net.ctx = &other;
    assert_int_equal(fota_init(&p), FOTA_OK);

    gate_release();
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(a.rc, FOTA_OK); /* kept its own copy of the hooks */
    mock_check(a.rc, &a.cb);
    assert_int_equal(other.connect_calls, 0);

    /* The next request uses the new hooks. */
    fota_opts_t o;
    mock_opts(&o);
    mock_cb_t cb;
    assert_int_equal(mock_request(&o, &cb), FOTA_ERR_CONNECT);
    assert_int_equal(other.connect_calls, 1);
}

/* fota_init() from inside a hook replaces the table for later requests, but
   the running one keeps its own unix_time hook: a date read from the new
   table (here NULL, "unknown") could turn an expired certificate into an
   accepted one. A Retry-After date makes the request read the date. */
static int g_time_old_calls;
static uint64_t time_old(void *ctx) {
    (void)ctx;
    g_time_old_calls++;
    return 784111777 - 2; /* two seconds before the Retry-After date */
}

static void init_without_unix_time(void *arg) {
    (void)arg;
    if (g_net.recv_calls > 1) {
        return;
    }
    fota_platform_t p;
    mock_platform(&p);
    p.sys.unix_time = NULL;
    assert_int_equal(fota_init(&p), FOTA_OK);
}

static void init_while_running_keeps_the_running_date_hook(void **state) {
    (void)state;
    fota_platform_t p;
    mock_platform(&p);
    p.sys.unix_time = time_old;
    assert_int_equal(fota_init(&p), FOTA_OK);
    g_time_old_calls = 0;
    mock_script_str("HTTP/1.1 503 Busy\r\nRetry-After: Sun, 06 Nov 1994 08:49:37 GMT\r\n"
                    "Content-Length: 0\r\n\r\n");
    mock_fill_image(g_img, 1000, 9);
    mock_script_image(g_img, 1000);
    g_net.on_recv = init_without_unix_time;
    fota_opts_t o;
    mock_opts(&o);
    o.max_retries = 1;
    mock_cb_t cb;
    uint32_t before = g_sys.now;
    int32_t rc = mock_request(&o, &cb);
    assert_int_equal(rc, FOTA_OK);
    mock_check(rc, &cb);
    assert_true(g_time_old_calls >= 1);
    /* The date from the request's own hook: a pause of 2 s. */
    assert_true(g_sys.now - before >= 2000);
    assert_true(g_sys.now - before < 3000);
}

/* A second request started while the first one runs (from its progress
   callback or from one of its hooks): tried once, its code kept. */
static int32_t g_nested_rc;
static mock_cb_t g_nested_cb;

static void nested_reset(void) {
    memset(&g_nested_cb, 0, sizeof(g_nested_cb));
    g_nested_rc = -1;
}

static void nested_request_once(void) {
    if (g_nested_cb.calls == 0) {
        fota_opts_t o;
        mock_opts(&o);
        g_nested_rc = fota_request(mock_result_cb, &g_nested_cb, &o);
    }
}

static void nested_request(uint32_t written, uint32_t total, void *arg) {
    (void)written;
    (void)total;
    (void)arg;
    nested_request_once();
}

static void request_from_the_progress_callback_is_busy(void **state) {
    (void)state;
    nested_reset();
    mock_fill_image(g_img, 3000, 2);
    mock_script_image(g_img, 3000)->max_piece = 1000;
    mock_progress_t pcb = {0};
    pcb.also = nested_request;
    fota_opts_t o;
    mock_opts(&o);
    o.progress_cb = mock_progress_cb;
    o.progress_user = &pcb;
    mock_cb_t cb;
    int32_t rc = mock_request(&o, &cb);
    assert_int_equal(g_nested_rc, FOTA_ERR_BUSY);
    assert_int_equal(g_nested_cb.calls, 1);
    assert_int_equal(g_nested_cb.last, FOTA_ERR_BUSY);
    assert_int_equal(rc, FOTA_OK); /* the outer request is not disturbed */
    mock_check(rc, &cb);
    mock_check_image(g_img, 3000);
    assert_int_equal(g_net.connect_calls, 1);
}

/* A request from inside a hook (here: recv). */
static void request_in_hook(void *arg) {
    (void)arg;
    nested_request_once();
}

static void request_from_inside_a_hook_is_busy(void **state) {
    (void)state;
    nested_reset();
    g_net.on_recv = request_in_hook;
    mock_script_str("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello");
    fota_opts_t o;
    mock_opts(&o);
    mock_cb_t cb;
    int32_t rc = mock_request(&o, &cb);
    assert_int_equal(g_nested_rc, FOTA_ERR_BUSY);
    assert_int_equal(g_nested_cb.calls, 1);
    assert_int_equal(rc, FOTA_OK);
    mock_check(rc, &cb);
}

/* A new request from the result callback: the lock is already released. */
static int g_chain_calls;
static int32_t g_chain_inner_rc;

static void chain_cb(int32_t result, void *user) {
    mock_cb_t *cb = user;
    cb->calls++;
    cb->last = result;
    if (g_chain_calls++ == 0) {
        fota_opts_t o;
        mock_opts(&o);
        mock_cb_t inner;
        g_chain_inner_rc = mock_request(&o, &inner);
    }
}

static void request_from_the_result_callback_runs(void **state) {
    (void)state;
    g_chain_calls = 0;
    g_chain_inner_rc = -1;
    mock_script_str("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
    mock_script_str("HTTP/1.1 304 Not Modified\r\n\r\n");
    fota_opts_t o;
    mock_opts(&o);
    mock_cb_t cb = {0};
    int32_t rc = fota_request(chain_cb, &cb, &o);
    assert_int_equal(rc, FOTA_NO_UPDATE);
    assert_int_equal(cb.calls, 1);
    assert_int_equal(cb.last, FOTA_NO_UPDATE);
    assert_int_equal(g_chain_calls, 1);
    assert_int_equal(g_chain_inner_rc, FOTA_NO_UPDATE); /* not FOTA_ERR_BUSY */
    assert_int_equal(g_net.connect_calls, 2);
}

/* ------------------------------------------------------------------ abort */

static void abort_now(uint32_t written, uint32_t total, void *arg) {
    (void)written;
    (void)total;
    (void)arg;
    fota_progress_t p;
    fota_get_progress(&p); /* allowed from the callback */
    fota_abort();
}

static void abort_from_the_progress_callback(void **state) {
    (void)state;
    mock_fill_image(g_img, 10000, 3);
    mock_script_image(g_img, 10000)->max_piece = 1000;
    mock_progress_t pcb = {0};
    pcb.also = abort_now;
    fota_opts_t o;
    mock_opts(&o);
    o.progress_cb = mock_progress_cb;
    o.progress_user = &pcb;
    mock_cb_t cb;
    int32_t rc = mock_request(&o, &cb);
    assert_int_equal(rc, FOTA_ERR_ABORTED);
    mock_check(rc, &cb);
    assert_int_equal(g_flash.init_ok, 1);
    assert_int_equal(g_flash.end_discard, 1);
    assert_int_equal(pcb.calls, 1); /* no write after the abort */
    assert_true(g_flash.written < 10000);
}

static void abort_from_another_thread(void **state) {
    (void)state;
    gate_reset();
    /* Blocks in the first recv; then the server is silent. */
    mock_conn_t *c = mock_script_str("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhel");
    c->end = MOCK_END_WOULD_BLOCK;
    c->max_piece = 20;
    g_net.on_recv = gate_block;

    job_t a;
    memset(&a, 0, sizeof(a));
    mock_opts(&a.opts);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, job_run, &a), 0);
    gate_wait_entered();
    fota_abort();
    gate_release();
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(a.rc, FOTA_ERR_ABORTED);
    mock_check(a.rc, &a.cb);
    assert_int_equal(g_flash.init_calls, 0); /* aborted before the head was complete */
    /* Noticed at the next I/O boundary, not after the idle timeout. */
    assert_true(g_net.recv_calls <= 2);
}

static void abort_after_the_last_write_prevents_the_commit(void **state) {
    (void)state;
    gate_reset();
    g_flash.done_busy = INT32_MAX;
    mock_script_str("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello");
    /* Abort from another thread while the last write runs: no commit. */
    job_t a;
    memset(&a, 0, sizeof(a));
    mock_opts(&a.opts);
    g_flash.on_write = gate_block;
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, job_run, &a), 0);
    gate_wait_entered();
    fota_abort();
    gate_release();
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(a.rc, FOTA_ERR_ABORTED);
    mock_check(a.rc, &a.cb);
    assert_int_equal(g_flash.end_discard, 1);
}

static void abort_with_nothing_running_has_no_effect(void **state) {
    (void)state;
    fota_abort();
    fota_abort();
    mock_script_str("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello");
    fota_opts_t o;
    mock_opts(&o);
    mock_cb_t cb;
    int32_t rc = mock_request(&o, &cb);
    assert_int_equal(rc, FOTA_OK);
    mock_check(rc, &cb);
}

static void abort_of_one_request_does_not_leak_into_the_next(void **state) {
    (void)state;
    mock_fill_image(g_img, 10000, 4);
    mock_script_image(g_img, 10000)->max_piece = 1000;
    mock_progress_t pcb = {0};
    pcb.also = abort_now;
    fota_opts_t o;
    mock_opts(&o);
    o.progress_cb = mock_progress_cb;
    o.progress_user = &pcb;
    mock_cb_t cb;
    assert_int_equal(mock_request(&o, &cb), FOTA_ERR_ABORTED);

    mock_reset();
    mock_script_image(g_img, 10000)->max_piece = 1000;
    mock_opts(&o);
    int32_t rc = mock_request(&o, &cb);
    assert_int_equal(rc, FOTA_OK);
    mock_check(rc, &cb);
    mock_check_image(g_img, 10000);
}

#define T(f) cmocka_unit_test_setup(f, setup)

int main(void) {
    const struct CMUnitTest tests[] = {
        T(second_thread_gets_busy_at_once),
        T(init_while_running_leaves_the_running_request_alone),
        T(init_while_running_keeps_the_running_date_hook),
        T(request_from_the_progress_callback_is_busy),
        T(request_from_inside_a_hook_is_busy),
        T(request_from_the_result_callback_runs),
        T(abort_from_the_progress_callback),
        T(abort_from_another_thread),
        T(abort_after_the_last_write_prevents_the_commit),
        T(abort_with_nothing_running_has_no_effect),
        T(abort_of_one_request_does_not_leak_into_the_next),
    };
    return cmocka_run_group_tests_name("busy", tests, NULL, NULL);
}
