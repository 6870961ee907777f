/* Net hooks that play an HTTP/1.1 server compiled into the firmware. For each
 * connection the server reads the library's request, checks it (request line,
 * Host, and on a reconnection the `Range: bytes=N-` / `If-Range` the library
 * must send to resume), then answers from a script: a Content-Length body, a
 * chunked body, a refusal, or a body cut off by a dropped connection followed
 * by a 206 that continues at the offset the library asked for. Answers are
 * delivered in fragments of varying size, after a first "nothing yet". */
#include <string.h>

#include "fw.h"

#define HOST "fw.example.com"
#define PORT 8080
#define SOCK 3
#define MAX_PIECES 160
#define REQ_MAX 1024

enum piece_kind { TEXT, DATA, DROP };
struct piece {
    enum piece_kind kind;
    uint32_t off, len; /* TEXT: in pool; DATA: range of the image */
};

static const struct scenario *sc;
static uint32_t connections;
static bool open_;
static char req[REQ_MAX + 1];
static uint32_t req_len;
static bool answered;
static bool waited;
static struct piece pieces[MAX_PIECES];
static uint32_t n_pieces, cur, cur_off;
static char pool[4096];
static uint32_t pool_len;
static uint32_t served;        /* image bytes delivered on the dropped connection */
static uint32_t rng = 1;
static const char *error = "";

static void fail(const char *why) {
    if (error[0] == '\0') {
        error = why;
    }
}

void server_start(const struct scenario *s) {
    sc = s;
    connections = 0;
    open_ = false;
    served = 0;
    rng = 0x1234567u ^ s->seed;
    error = "";
}

const char *server_error(void) { return error; }
uint32_t server_connections(void) { return connections; }

static uint32_t next_rand(void) {
    rng ^= rng << 13;
    rng ^= rng >> 17;
    rng ^= rng << 5;
    return rng;
}

/* ---- building an answer ---------------------------------------------- */

static void add(enum piece_kind kind, uint32_t off, uint32_t len) {
    if (n_pieces == MAX_PIECES) {
        fail("server: too many pieces");
        return;
    }
    pieces[n_pieces++] = (struct piece){kind, off, len};
}

static void text(const char *s) {
    size_t n = strlen(s);
    if (pool_len + n > sizeof pool) {
        fail("server: text pool full");
        return;
    }
    memcpy(pool + pool_len, s, n);
    /* Extend the previous TEXT piece when it ends where this one starts. */
    if (n_pieces > 0 && pieces[n_pieces - 1].kind == TEXT &&
        pieces[n_pieces - 1].off + pieces[n_pieces - 1].len == pool_len) {
        pieces[n_pieces - 1].len += (uint32_t)n;
    } else {
        add(TEXT, pool_len, (uint32_t)n);
    }
    pool_len += (uint32_t)n;
}

static void number(uint32_t v, unsigned base) {
    char buf[12];
    char *p = buf + sizeof buf - 1;
    *p = '\0';
    do {
        *--p = "0123456789abcdef"[v % base];
        v /= base;
    } while (v != 0);
    text(p);
}

static void etag(void) {
    text("ETag: \"img-");
    number(sc->seed, 16);
    text("\"\r\n");
}

/* ---- checking the request -------------------------------------------- */

static const char *find(const char *hay, const char *needle) { return strstr(hay, needle); }

/* Parses "Range: bytes=N-\r\n"; returns false when absent. */
static bool range_from(uint32_t *from) {
    const char *p = find(req, "\r\nRange: bytes=");
    if (p == NULL) {
        return false;
    }
    p += strlen("\r\nRange: bytes=");
    uint32_t n = 0;
    if (*p < '0' || *p > '9') {
        fail("request: malformed Range");
        return true;
    }
    while (*p >= '0' && *p <= '9') {
        n = n * 10 + (uint32_t)(*p++ - '0');
    }
    if (strncmp(p, "-\r\n", 3) != 0) {
        fail("request: Range is not an open range bytes=N-");
    }
    *from = n;
    return true;
}

static void answer(void) {
    answered = true;
    n_pieces = cur = cur_off = pool_len = 0;

    /* Request line and Host exactly as the library must write them. */
    char line[128] = "GET ";
    strcat(line, sc->path);
    strcat(line, " HTTP/1.1\r\n");
    if (strncmp(req, line, strlen(line)) != 0) {
        fail("request: unexpected request line");
    }
    if (find(req, "\r\nHost: " HOST ":8080\r\n") == NULL) {
        fail("request: missing or wrong Host header");
    }
    uint32_t from = 0;
    bool ranged = range_from(&from);

    if (connections == 1) {
        if (ranged) {
            fail("request: Range on the first request");
        }
        if (sc->status >= 300) {
            text("HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: 9\r\n\r\nnot found");
            return;
        }
        switch (sc->framing) {
        case FRAMING_LENGTH:
            text("HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: ");
            number(sc->len, 10);
            text("\r\n");
            etag();
            text("Connection: keep-alive\r\n\r\n");
            if (sc->drop_after != 0) {
                add(DATA, 0, sc->drop_after);
                add(DROP, 0, 0);
            } else {
                add(DATA, 0, sc->len);
            }
            break;
        case FRAMING_CHUNKED: {
            /* An interim 100 first, then chunks of varying size, one with an
             * extension, and a trailer. */
            text("HTTP/1.1 100 Continue\r\n\r\n");
            text("HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                 "Transfer-Encoding: chunked\r\n\r\n");
            uint32_t off = 0, k = 0;
            while (off < sc->len) {
                uint32_t n = 300 + (next_rand() % 1900);
                if (n > sc->len - off) {
                    n = sc->len - off;
                }
                number(n, 16);
                text(k++ == 1 ? ";name=value\r\n" : "\r\n");
                add(DATA, off, n);
                text("\r\n");
                off += n;
            }
            text("0\r\nX-Trailer: done\r\n\r\n");
            break;
        }
        case FRAMING_NONE:
            text("HTTP/1.0 200 OK\r\n\r\n");
            add(DATA, 0, sc->len);
            break;
        }
        return;
    }

    /* A reconnection: only after a drop, and it must continue the image. */
    if (sc->drop_after == 0) {
        fail("request: reconnection without a drop");
    }
    if (!ranged) {
        fail("request: reconnection without Range");
        from = 0;
    } else if (from == 0 || from > served) {
        fail("request: Range does not start within the bytes already sent");
    }
    if (find(req, "\r\nIf-Range: \"img-") == NULL) {
        fail("request: resume without If-Range carrying the ETag");
    }
    text("HTTP/1.1 206 Partial Content\r\nContent-Type: application/octet-stream\r\nContent-Range: bytes ");
    number(from, 10);
    text("-");
    number(sc->len - 1, 10);
    text("/");
    number(sc->len, 10);
    text("\r\nContent-Length: ");
    number(sc->len - from, 10);
    text("\r\n");
    etag();
    text("\r\n");
    add(DATA, from, sc->len - from);
}

/* ---- the hooks -------------------------------------------------------- */

static int32_t net_connect(void *ctx, const char *host, uint16_t port, uint32_t timeout_ms) {
    (void)ctx;
    (void)timeout_ms;
    clock_advance(5);
    if (strcmp(host, HOST) != 0 || port != PORT) {
        fail("connect: wrong host or port");
        return -1;
    }
    if (open_) {
        fail("connect: previous connection not closed");
    }
    connections++;
    open_ = true;
    req_len = 0;
    req[0] = '\0';
    answered = false;
    waited = false;
    return SOCK;
}

static int32_t net_send(void *ctx, int32_t sock, const uint8_t *buf, size_t len, uint32_t timeout_ms) {
    (void)ctx;
    (void)timeout_ms;
    clock_advance(1);
    if (sock != SOCK || !open_) {
        fail("send: bad socket");
        return -1;
    }
    if (answered) {
        fail("send: data after the request head");
        return -1;
    }
    /* Take at most 200 bytes at a time: the library must handle short sends. */
    size_t n = len < 200 ? len : 200;
    if (req_len + n > REQ_MAX) {
        fail("send: request head too long");
        return -1;
    }
    memcpy(req + req_len, buf, n);
    req_len += (uint32_t)n;
    req[req_len] = '\0';
    if (req_len >= 4 && memcmp(req + req_len - 4, "\r\n\r\n", 4) == 0) {
        answer();
    }
    return (int32_t)n;
}

static int32_t net_recv(void *ctx, int32_t sock, uint8_t *buf, size_t len, uint32_t timeout_ms) {
    (void)ctx;
    if (sock != SOCK || !open_ || buf == NULL || len == 0) {
        fail("recv: bad arguments");
        return -1;
    }
    if (!answered || !waited) {
        /* Nothing within the timeout: the server has not answered yet. */
        waited = answered;
        clock_advance(timeout_ms);
        return FOTA_NET_WOULD_BLOCK;
    }
    clock_advance(1);
    size_t limit = 1 + next_rand() % 1460;  /* one TCP segment or less */
    if (limit > len) {
        limit = len;
    }
    size_t n = 0;
    while (n < limit && cur < n_pieces) {
        const struct piece *p = &pieces[cur];
        if (p->kind == DROP) {
            if (n > 0) {
                break;  /* deliver what we have; drop on the next call */
            }
            return 0;  /* the peer closed the connection mid-body */
        }
        uint32_t left = p->len - cur_off;
        uint32_t take = (uint32_t)(limit - n) < left ? (uint32_t)(limit - n) : left;
        if (p->kind == TEXT) {
            memcpy(buf + n, pool + p->off + cur_off, take);
        } else {
            for (uint32_t i = 0; i < take; i++) {
                buf[n + i] = image_byte(sc->seed, p->off + cur_off + i);
            }
            if (connections == 1) {
                served = p->off + cur_off + take;
            }
        }
        n += take;
        cur_off += take;
        if (cur_off == p->len) {
            cur++;
            cur_off = 0;
        }
    }
    return (int32_t)n;  /* 0 once the answer is complete: the server closes */
}

static void net_close(void *ctx, int32_t sock) {
    (void)ctx;
    if (sock != SOCK || !open_) {
        fail("close: bad socket or closed twice");
    }
    open_ = false;
}

const fota_net_ops_t server_net_ops = {
    .ctx = NULL,
    .connect = net_connect,
    .send = net_send,
    .recv = net_recv,
    .close = net_close,
};
