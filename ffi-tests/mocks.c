#include "mocks.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

mock_net_t g_net;
mock_flash_t g_flash;
mock_sys_t g_sys;

#define POOL_MAX (8u * 1024u * 1024u)
static uint8_t g_pool[POOL_MAX];
static size_t g_pool_used;

#define VIOLATION(who, ...)                                                        \
    do {                                                                           \
        if ((who).violations++ == 0) {                                             \
            snprintf((who).violation, sizeof((who).violation), __VA_ARGS__);      \
        }                                                                          \
    } while (0)

/* ------------------------------------------------------------------ pool */

const uint8_t *mock_keep(const void *data, size_t len) {
    if (len > POOL_MAX - g_pool_used) {
        fprintf(stderr, "mocks: pool exhausted\n");
        abort();
    }
    uint8_t *p = g_pool + g_pool_used;
    if (len > 0) {
        memcpy(p, data, len);
    }
    g_pool_used += len;
    return p;
}

/* Reserves pool space to be filled by the caller. */
static uint8_t *pool_take(size_t len) {
    if (len > POOL_MAX - g_pool_used) {
        fprintf(stderr, "mocks: pool exhausted\n");
        abort();
    }
    uint8_t *p = g_pool + g_pool_used;
    g_pool_used += len;
    return p;
}

/* ------------------------------------------------------------------ network */

static int32_t net_connect(void *ctx, const char *host, uint16_t port, uint32_t timeout_ms) {
    mock_net_t *n = ctx;
    int i = n->connect_calls++;
    if (host == NULL) {
        VIOLATION(*n, "connect: host is NULL");
        return -1;
    }
    if (i < MOCK_MAX_CONNS) {
        snprintf(n->hosts[i], sizeof(n->hosts[i]), "%s", host);
        n->ports[i] = port;
        n->connect_timeouts[i] = timeout_ms;
    }
    if (n->cur >= 0) {
        VIOLATION(*n, "connect #%d while connection #%d is open", i, n->cur);
    }
    if (timeout_ms == 0) {
        VIOLATION(*n, "connect #%d with timeout 0", i);
    }
    if (n->connect_ret < 0) {
        return n->connect_ret;
    }
    if (i < n->connect_fail_first) {
        return -1;
    }
    if (i >= MOCK_MAX_CONNS) {
        return -1;
    }
    n->connect_ok++;
    n->cur = i;
    n->sock = 100 + i;
    n->sent_start[i] = n->sent_len;
    return n->sock;
}

static int32_t net_send(void *ctx, int32_t sock, const uint8_t *buf, size_t len, uint32_t timeout_ms) {
    mock_net_t *n = ctx;
    n->send_calls++;
    if (n->cur < 0 || sock != n->sock) {
        VIOLATION(*n, "send on socket %d (open: %d)", (int)sock, n->cur >= 0 ? (int)n->sock : -1);
        return -1;
    }
    if (buf == NULL || len == 0) {
        VIOLATION(*n, "send with buf %p len %zu", (const void *)buf, len);
        return -1;
    }
    if (timeout_ms > n->max_send_timeout) {
        n->max_send_timeout = timeout_ms;
    }
    if (n->send_would_block > 0) {
        n->send_would_block--;
        if (!g_sys.frozen) {
            g_sys.now += timeout_ms;
        }
        return FOTA_NET_WOULD_BLOCK;
    }
    switch (n->send_mode) {
    case MOCK_SEND_OK:
        break;
    case MOCK_SEND_TOO_MANY:
        return (int32_t)(len + 1);
    case MOCK_SEND_ZERO:
        return 0;
    case MOCK_SEND_ERROR:
        return -1;
    }
    size_t take = len;
    if (n->send_max != 0 && take > n->send_max) {
        take = n->send_max;
    }
    if (take > MOCK_SENT_MAX - n->sent_len) {
        VIOLATION(*n, "more than %d bytes sent", MOCK_SENT_MAX);
        return -1;
    }
    memcpy(n->sent + n->sent_len, buf, take);
    n->sent_len += take;
    n->sent[n->sent_len] = 0;
    return (int32_t)take;
}

static int32_t net_recv(void *ctx, int32_t sock, uint8_t *buf, size_t len, uint32_t timeout_ms) {
    mock_net_t *n = ctx;
    n->recv_calls++;
    if (n->on_recv != NULL) {
        n->on_recv(n->on_recv_arg);
    }
    if (n->cur < 0 || sock != n->sock) {
        VIOLATION(*n, "recv on socket %d (open: %d)", (int)sock, n->cur >= 0 ? (int)n->sock : -1);
        return -1;
    }
    if (buf == NULL || len == 0) {
        VIOLATION(*n, "recv with buf %p len %zu", (void *)buf, len);
        return -1;
    }
    if (timeout_ms > n->max_recv_timeout) {
        n->max_recv_timeout = timeout_ms;
    }
    if (n->cur >= n->nconns) {
        return 0; /* unscripted connection: closes at once */
    }
    mock_conn_t *c = &n->conns[n->cur];
    if (c->would_block_before > 0) {
        c->would_block_before--;
        if (!g_sys.frozen) {
            g_sys.now += timeout_ms;
        }
        return FOTA_NET_WOULD_BLOCK;
    }
    if (c->misbehave != MOCK_RECV_OK && c->pos >= c->misbehave_at) {
        if (c->misbehave == MOCK_RECV_WEIRD_NEGATIVE) {
            return c->weird;
        }
        /* Claims len + 1 bytes but stores only len (never overflows the buffer). */
        size_t avail = c->len - c->pos;
        size_t take = avail < len ? avail : len;
        memcpy(buf, c->data + c->pos, take);
        c->pos += take;
        return (int32_t)(len + 1);
    }
    if (c->pos >= c->len) {
        switch (c->end) {
        case MOCK_END_CLOSE:
            return 0;
        case MOCK_END_ERROR:
            return c->end_error;
        case MOCK_END_WOULD_BLOCK:
            if (!g_sys.frozen) {
                g_sys.now += timeout_ms;
            }
            return FOTA_NET_WOULD_BLOCK;
        }
    }
    size_t take = c->len - c->pos;
    if (take > len) {
        take = len;
    }
    if (c->max_piece != 0 && take > c->max_piece) {
        take = c->max_piece;
    }
    for (size_t s = 0; s < c->nsplits; s++) {
        if (c->splits[s] > c->pos) {
            if (take > c->splits[s] - c->pos) {
                take = c->splits[s] - c->pos;
            }
            break;
        }
    }
    memcpy(buf, c->data + c->pos, take);
    c->pos += take;
    return (int32_t)take;
}

static void net_close(void *ctx, int32_t sock) {
    mock_net_t *n = ctx;
    n->close_calls++;
    if (n->cur < 0 || sock != n->sock) {
        VIOLATION(*n, "close of socket %d (open: %d)", (int)sock, n->cur >= 0 ? (int)n->sock : -1);
        return;
    }
    n->cur = -1;
}

/* ------------------------------------------------------------------ flash */

static int32_t flash_init(void *ctx, const fota_storage_t *storage, uint32_t image_len) {
    mock_flash_t *f = ctx;
    f->init_calls++;
    if (f->on_init != NULL) {
        f->on_init(f->on_init_arg);
    }
    if (f->open) {
        VIOLATION(*f, "init while an image is open");
    }
    if (storage == NULL) {
        VIOLATION(*f, "init: storage is NULL");
    } else {
        f->storage = *storage;
    }
    f->init_image_len = image_len;
    if (f->init_ret < 0) {
        return f->init_ret;
    }
    f->init_ok++;
    f->open = true;
    f->written = 0;
    return f->init_ret;
}

static int32_t flash_write(void *ctx, uint32_t offset, const uint8_t *data, size_t len) {
    mock_flash_t *f = ctx;
    int index = ++f->write_calls;
    if (f->on_write != NULL) {
        f->on_write(f->on_write_arg);
    }
    if (!f->open) {
        VIOLATION(*f, "write #%d outside init..end", index);
        return -1;
    }
    if (data == NULL || len == 0) {
        VIOLATION(*f, "write #%d with data %p len %zu", index, (const void *)data, len);
        return -1;
    }
    if (offset != f->written) {
        VIOLATION(*f, "write #%d at offset %u, expected %zu (out of order or gap)", index,
                  (unsigned)offset, f->written);
        return -1;
    }
    if (len > MOCK_IMAGE_MAX - f->written) {
        VIOLATION(*f, "write #%d past the mock's %d bytes", index, MOCK_IMAGE_MAX);
        return -1;
    }
    if (f->nwrites < MOCK_MAX_WRITES) {
        f->offsets[f->nwrites] = offset;
        f->lens[f->nwrites] = (uint32_t)len;
        f->nwrites++;
    }
    if (f->fail_write_at == index) {
        return f->fail_write_ret < 0 ? f->fail_write_ret : -1;
    }
    memcpy(f->image + offset, data, len);
    f->written += len;
    return 0;
}

static int32_t flash_done(void *ctx) {
    mock_flash_t *f = ctx;
    f->done_calls++;
    if (!f->open) {
        VIOLATION(*f, "done outside init..end");
    }
    if (f->done_busy > 0) {
        f->done_busy--;
        return 1;
    }
    return f->done_final;
}

static int32_t flash_end(void *ctx, bool commit) {
    mock_flash_t *f = ctx;
    f->end_calls++;
    if (!f->open) {
        VIOLATION(*f, "end(%s) without an open image", commit ? "true" : "false");
    }
    f->open = false;
    if (commit) {
        f->end_commit++;
    } else {
        f->end_discard++;
    }
    return f->end_ret;
}

/* ------------------------------------------------------------------ system */

static uint32_t sys_now(void *ctx) {
    mock_sys_t *s = ctx;
    s->now_calls++;
    uint32_t t = s->now;
    if (!s->frozen) {
        s->now += s->step;
    }
    return t;
}

static void sys_sleep(void *ctx, uint32_t ms) {
    mock_sys_t *s = ctx;
    s->sleep_calls++;
    s->slept_ms += ms;
    if (!s->frozen) {
        s->now += ms;
    }
}

static void sys_log(void *ctx, int32_t level, const char *msg, size_t len) {
    mock_sys_t *s = ctx;
    s->log_lines++;
    if (level < FOTA_LOG_ERROR || level > FOTA_LOG_DEBUG || (msg == NULL && len != 0)) {
        s->log_bad++;
        return;
    }
    for (size_t i = 0; i < len; i++) {
        if (msg[i] == 0 || msg[i] == '\r' || msg[i] == '\n') {
            s->log_bad++;
            break;
        }
    }
    if (getenv("FOTA_TEST_LOG") != NULL) {
        fprintf(stderr, "  [fota %d] %.*s\n", (int)level, (int)len, msg);
    }
    if (len + 1 <= MOCK_LOG_MAX - s->log_len) {
        memcpy(s->log + s->log_len, msg, len);
        s->log_len += len;
        s->log[s->log_len++] = '\n';
        s->log[s->log_len] = 0;
    }
}

bool mock_log_contains(const char *needle) {
    return strstr(g_sys.log, needle) != NULL;
}

/* ------------------------------------------------------------------ setup */

void mock_platform(fota_platform_t *p) {
    memset(p, 0, sizeof(*p));
    p->net.ctx = &g_net;
    p->net.connect = net_connect;
    p->net.send = net_send;
    p->net.recv = net_recv;
    p->net.close = net_close;
    p->flash.ctx = &g_flash;
    p->flash.init = flash_init;
    p->flash.write = flash_write;
    p->flash.done = g_flash.no_done_hook ? NULL : flash_done;
    p->flash.end = flash_end;
    p->flash.write_granularity = g_flash.write_granularity;
    p->sys.ctx = &g_sys;
    p->sys.now_ms = sys_now;
    p->sys.sleep_ms = sys_sleep;
    p->sys.random = NULL;
    p->sys.log = sys_log;
}

void mock_reset(void) {
    memset(&g_net, 0, sizeof(g_net));
    memset(&g_flash, 0, sizeof(g_flash));
    memset(&g_sys, 0, sizeof(g_sys));
    g_net.cur = -1;
    g_net.sock = -1;
    g_sys.now = 1000;
    g_pool_used = 0;
    fota_platform_t p;
    mock_platform(&p);
    int32_t rc = fota_init(&p);
    if (rc != FOTA_OK) {
        fprintf(stderr, "mocks: fota_init failed with %d\n", (int)rc);
        abort();
    }
}

void mock_opts(fota_opts_t *opts) {
    fota_opts_init(opts);
    opts->url = "http://fw.example.com/app.bin";
    opts->storage.max_len = MOCK_IMAGE_MAX;
    /* One connection per request unless a test asks for retries. */
    opts->max_retries = 0;
}

/* ------------------------------------------------------------------ scripts */

mock_conn_t *mock_script(const void *data, size_t len) {
    if (g_net.nconns >= MOCK_MAX_CONNS) {
        fprintf(stderr, "mocks: too many scripted connections\n");
        abort();
    }
    mock_conn_t *c = &g_net.conns[g_net.nconns++];
    memset(c, 0, sizeof(*c));
    c->data = mock_keep(data, len);
    c->len = len;
    c->end = MOCK_END_CLOSE;
    c->end_error = -104; /* -ECONNRESET */
    return c;
}

mock_conn_t *mock_script_str(const char *response) {
    return mock_script(response, strlen(response));
}

mock_conn_t *mock_script_image(const uint8_t *image, size_t len) {
    char head[128];
    int h = snprintf(head, sizeof(head), "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n\r\n", len);
    uint8_t *p = pool_take((size_t)h + len);
    memcpy(p, head, (size_t)h);
    memcpy(p + h, image, len);
    mock_conn_t *c = mock_script(NULL, 0);
    c->data = p;
    c->len = (size_t)h + len;
    return c;
}

mock_conn_t *mock_script_chunked(const uint8_t *image, size_t len, size_t chunk) {
    static const char head[] = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
    size_t nchunks = chunk == 0 ? 0 : (len + chunk - 1) / chunk;
    size_t cap = sizeof(head) + len + nchunks * 24 + 16;
    uint8_t *p = pool_take(cap);
    size_t at = 0;
    memcpy(p, head, sizeof(head) - 1);
    at += sizeof(head) - 1;
    for (size_t off = 0; off < len; off += chunk) {
        size_t n = len - off < chunk ? len - off : chunk;
        at += (size_t)snprintf((char *)p + at, 24, "%zx\r\n", n);
        memcpy(p + at, image + off, n);
        at += n;
        memcpy(p + at, "\r\n", 2);
        at += 2;
    }
    memcpy(p + at, "0\r\n\r\n", 5);
    at += 5;
    mock_conn_t *c = mock_script(NULL, 0);
    c->data = p;
    c->len = at;
    return c;
}

void mock_split(mock_conn_t *c, size_t nsplits, const size_t *splits) {
    for (size_t i = 0; i < nsplits && c->nsplits < MOCK_MAX_SPLITS; i++) {
        c->splits[c->nsplits++] = splits[i];
    }
}

void mock_fill_image(uint8_t *out, size_t len, uint32_t seed) {
    uint32_t x = seed * 2654435761u + 12345u;
    for (size_t i = 0; i < len; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        out[i] = (uint8_t)(x >> 24);
    }
}

const char *mock_sent(int i) {
    static char copy[MOCK_SENT_MAX + 1];
    if (i < 0 || i >= g_net.connect_ok) {
        return "";
    }
    size_t start = g_net.sent_start[i];
    size_t end = i + 1 < g_net.connect_ok ? g_net.sent_start[i + 1] : g_net.sent_len;
    memcpy(copy, g_net.sent + start, end - start);
    copy[end - start] = 0;
    return copy;
}

/* ------------------------------------------------------------------ callbacks */

void mock_result_cb(int32_t result, void *user) {
    mock_cb_t *cb = user;
    cb->calls++;
    cb->last = result;
}

void mock_progress_cb(uint32_t written, uint32_t total, void *user) {
    mock_progress_t *p = user;
    if (written < p->last_written) {
        p->non_monotonic = true;
    }
    p->calls++;
    p->last_written = written;
    p->last_total = total;
    if (p->also != NULL) {
        p->also(written, total, p->also_arg);
    }
}

/* ------------------------------------------------------------------ checks */

int32_t mock_request(const fota_opts_t *opts, mock_cb_t *cb) {
    memset(cb, 0, sizeof(*cb));
    cb->last = -12345;
    return fota_request(mock_result_cb, cb, opts);
}

void mock_check(int32_t rc, const mock_cb_t *cb) {
    /* The callback ran exactly once, with the returned code. */
    assert_int_equal(cb->calls, 1);
    assert_int_equal(cb->last, rc);
    /* The hooks were used by their contract. */
    if (g_net.violations != 0) {
        fail_msg("network hook contract: %s (%d violations)", g_net.violation, g_net.violations);
    }
    if (g_flash.violations != 0) {
        fail_msg("flash hook contract: %s (%d violations)", g_flash.violation, g_flash.violations);
    }
    assert_int_equal(g_sys.log_bad, 0);
    /* Every successful connect was closed, exactly once. */
    assert_int_equal(g_net.close_calls, g_net.connect_ok);
    assert_int_equal(g_net.cur, -1);
    /* end() exactly once after a successful init, commit only on success. */
    assert_false(g_flash.open);
    assert_true(g_flash.init_ok <= 1);
    assert_int_equal(g_flash.end_calls, g_flash.init_ok);
    if (rc == FOTA_OK) {
        assert_int_equal(g_flash.end_commit, 1);
        assert_int_equal(g_flash.end_discard, 0);
    } else {
        assert_int_equal(g_flash.end_commit, 0);
        assert_int_equal(g_flash.end_discard, g_flash.init_ok);
    }
    /* Granularity: aligned offsets, whole blocks except the image's last write. */
    uint32_t g = g_flash.write_granularity;
    if (g != 0) {
        for (int i = 0; i < g_flash.nwrites; i++) {
            if (g_flash.offsets[i] % g != 0) {
                fail_msg("write %d at offset %u, not a multiple of %u", i, (unsigned)g_flash.offsets[i],
                         (unsigned)g);
            }
            if (i + 1 < g_flash.nwrites && g_flash.lens[i] % g != 0) {
                fail_msg("write %d of %u bytes (not the last), not a multiple of %u", i,
                         (unsigned)g_flash.lens[i], (unsigned)g);
            }
        }
    }
    /* Nothing runs any more. */
    fota_progress_t pr;
    memset(&pr, 0xa5, sizeof(pr));
    fota_get_progress(&pr);
    assert_int_equal(pr.state, FOTA_STATE_IDLE);
}

void mock_check_image(const uint8_t *image, size_t len) {
    assert_int_equal(g_flash.init_ok, 1);
    assert_int_equal(g_flash.end_commit, 1);
    assert_int_equal(g_flash.written, len);
    assert_memory_equal(g_flash.image, image, len);
}

void mock_check_no_traffic(void) {
    assert_int_equal(g_net.connect_calls, 0);
    assert_int_equal(g_net.send_calls, 0);
    assert_int_equal(g_net.recv_calls, 0);
    assert_int_equal(g_flash.init_calls, 0);
    assert_int_equal(g_flash.end_calls, 0);
}
