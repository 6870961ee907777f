/*
 * Test doubles for the fota C API: an in-memory flash with fault injection, a
 * scripted socket, a fake clock, and helpers that run a request and check the
 * contract invariants every request must keep.
 *
 * The hooks never call cmocka's assertions themselves (a failing assertion
 * longjmps, which must not cross the Rust frames between fota_request() and
 * the hook, and would leave the request lock taken). They record contract
 * violations instead; mock_check() asserts on them after fota_request()
 * returned.
 */
#ifndef FOTA_TEST_MOCKS_H
#define FOTA_TEST_MOCKS_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "fota.h"

#define MOCK_MAX_CONNS 8
#define MOCK_MAX_SPLITS 64
#define MOCK_SENT_MAX (64 * 1024)
#define MOCK_IMAGE_MAX (1024 * 1024)
#define MOCK_MAX_WRITES 8192
#define MOCK_LOG_MAX (32 * 1024)

/* What a scripted connection does once its response bytes are all handed out. */
typedef enum {
    MOCK_END_CLOSE,       /* recv returns 0 (peer closed) */
    MOCK_END_ERROR,       /* recv returns end_error (< 0) */
    MOCK_END_WOULD_BLOCK, /* recv returns FOTA_NET_WOULD_BLOCK forever (the clock advances) */
} mock_end_t;

/* Misbehaving recv hooks. */
typedef enum {
    MOCK_RECV_OK,
    MOCK_RECV_TOO_MANY,       /* returns more bytes than asked (writes only what was asked) */
    MOCK_RECV_WEIRD_NEGATIVE, /* returns `weird` (a negative other than FOTA_NET_WOULD_BLOCK) */
} mock_misbehave_t;

/* Misbehaving send hooks. */
typedef enum {
    MOCK_SEND_OK,
    MOCK_SEND_TOO_MANY, /* claims more bytes sent than asked */
    MOCK_SEND_ZERO,     /* returns 0 */
    MOCK_SEND_ERROR,    /* returns -1 */
} mock_send_mode_t;

/* One scripted TCP connection: the response, how it is cut, how it ends. */
typedef struct {
    const uint8_t *data; /* response bytes (in the mock's pool) */
    size_t len;
    size_t splits[MOCK_MAX_SPLITS]; /* offsets at which a recv stops short (ascending) */
    size_t nsplits;
    size_t max_piece;            /* most bytes per recv, 0 = as many as asked */
    unsigned would_block_before; /* FOTA_NET_WOULD_BLOCK this often before the first byte */
    mock_end_t end;
    int32_t end_error;          /* recv's value with MOCK_END_ERROR */
    mock_misbehave_t misbehave; /* from byte `misbehave_at` on */
    size_t misbehave_at;
    int32_t weird;
    size_t pos; /* bytes handed out so far */
} mock_conn_t;

typedef struct {
    mock_conn_t conns[MOCK_MAX_CONNS]; /* connection i gets conns[i]; beyond nconns: closes at once */
    int nconns;
    int32_t connect_ret;   /* < 0: every connect fails with this */
    int connect_fail_first; /* the first N connects fail (-1) */
    int connect_calls;
    int connect_ok;
    int close_calls;
    char hosts[MOCK_MAX_CONNS][320];
    uint16_t ports[MOCK_MAX_CONNS];
    uint32_t connect_timeouts[MOCK_MAX_CONNS];
    int cur;          /* index of the open connection, -1 when none */
    int32_t sock;     /* handle of the open connection */
    uint8_t sent[MOCK_SENT_MAX + 1]; /* everything sent, all connections, NUL-terminated */
    size_t sent_len;
    size_t sent_start[MOCK_MAX_CONNS]; /* where connection i's bytes start in `sent` */
    size_t send_max;                   /* most bytes accepted per send, 0 = all */
    unsigned send_would_block;         /* FOTA_NET_WOULD_BLOCK this often before accepting */
    mock_send_mode_t send_mode;
    int send_calls;
    int recv_calls;
    uint32_t max_recv_timeout;
    uint32_t max_send_timeout;
    int violations;
    char violation[256];
    void (*on_recv)(void *arg); /* called at the start of every recv */
    void *on_recv_arg;
} mock_net_t;

typedef struct {
    uint8_t image[MOCK_IMAGE_MAX];
    size_t written; /* next expected offset */
    uint32_t write_granularity;
    int32_t init_ret;
    int32_t end_ret;
    int fail_write_at; /* 1-based index of the write that fails, 0 = none */
    int32_t fail_write_ret;
    int done_busy;      /* done() returns 1 this often, then done_final */
    int32_t done_final; /* 0 ok, < 0 failed */
    bool no_done_hook;  /* install done = NULL */
    int init_calls;
    int init_ok;
    int write_calls;
    int done_calls;
    int end_calls;
    int end_commit;
    int end_discard;
    bool open; /* init succeeded, end not called yet */
    uint32_t init_image_len;
    fota_storage_t storage;
    uint32_t offsets[MOCK_MAX_WRITES];
    uint32_t lens[MOCK_MAX_WRITES];
    int nwrites;
    int violations;
    char violation[256];
    void (*on_write)(void *arg); /* called at the start of every write */
    void *on_write_arg;
    void (*on_init)(void *arg);
    void *on_init_arg;
} mock_flash_t;

typedef struct {
    uint32_t now;        /* the fake clock */
    uint32_t step;       /* added at every now_ms() call (0: only waits and sleeps move it) */
    bool frozen;         /* never advances, not even in waits and sleeps */
    int sleep_calls;
    uint64_t slept_ms;
    int now_calls;
    int log_lines;
    int log_bad; /* lines with a NUL, CR or LF, or an out-of-range level */
    char log[MOCK_LOG_MAX + 1];
    size_t log_len;
} mock_sys_t;

extern mock_net_t g_net;
extern mock_flash_t g_flash;
extern mock_sys_t g_sys;

/* Result-callback recorder: pass as `user` with mock_result_cb. */
typedef struct {
    int calls;
    int32_t last;
} mock_cb_t;
void mock_result_cb(int32_t result, void *user);

/* Progress-callback recorder: pass as progress_user with mock_progress_cb. */
typedef struct {
    int calls;
    uint32_t last_written;
    uint32_t last_total;
    bool non_monotonic;
    void (*also)(uint32_t written, uint32_t total, void *arg); /* extra action */
    void *also_arg;
} mock_progress_t;
void mock_progress_cb(uint32_t written, uint32_t total, void *user);

/* Zeroes the three mocks (clock at 1000 ms) and installs them with fota_init(). */
void mock_reset(void);
/* Fills a platform table with the mock hooks (done/log per the mocks' settings). */
void mock_platform(fota_platform_t *p);
/* fota_opts_init() plus a plain-http URL and max_len 1 MiB. */
void mock_opts(fota_opts_t *opts);

/* Copies bytes into the mock's pool (valid until mock_reset()). */
const uint8_t *mock_keep(const void *data, size_t len);
/* Adds a scripted connection whose response is `len` bytes of `data`. */
mock_conn_t *mock_script(const void *data, size_t len);
/* Adds a scripted connection with a NUL-terminated response. */
mock_conn_t *mock_script_str(const char *response);
/* Adds a connection answering 200 with Content-Length and the image. */
mock_conn_t *mock_script_image(const uint8_t *image, size_t len);
/* Adds a connection answering 200 with a chunked body of `chunk`-byte chunks. */
mock_conn_t *mock_script_chunked(const uint8_t *image, size_t len, size_t chunk);
/* Adds split points to a connection (absolute response offsets). */
void mock_split(mock_conn_t *c, size_t nsplits, const size_t *splits);
/* Deterministic image bytes. */
void mock_fill_image(uint8_t *out, size_t len, uint32_t seed);

/* What connection `i` sent, NUL-terminated (the mock keeps a NUL after the data). */
const char *mock_sent(int i);

/* Runs fota_request with the result recorder. */
int32_t mock_request(const fota_opts_t *opts, mock_cb_t *cb);

/* Asserts what every request must keep: the callback ran once with the
   returned code; the hooks were used by their contract (writes in order, no
   write outside init..end, one connection at a time, every connect closed);
   end() exactly once after a successful init, with commit only for FOTA_OK,
   no end() without init; the state is idle afterwards. */
void mock_check(int32_t rc, const mock_cb_t *cb);
/* Asserts the flash holds exactly `image` and was committed once. */
void mock_check_image(const uint8_t *image, size_t len);
/* Asserts that the request never reached the network. */
void mock_check_no_traffic(void);

/* Whether the log contains `needle`. */
bool mock_log_contains(const char *needle);

#endif /* FOTA_TEST_MOCKS_H */
