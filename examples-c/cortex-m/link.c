/* The serial link to the host bridge (tests/bridge.py), driven the way
 * firmware drives a cellular modem: one command at a time (open a TCP
 * connection, send, receive with a timeout, close), each answered by exactly
 * one reply. The link is the CMSDK APB UART0 of the mps2-an386, which QEMU
 * connects to a host socket (-serial tcp:127.0.0.1:PORT).
 *
 * Frame (both directions; README.md has the commands):
 *   0x7E | type (1) | length (2, LE) | payload (length) | Fletcher-16 (2: sum1, sum2)
 * The checksum covers type, length and payload. A reply that does not come
 * within the command's timeout plus LINK_MARGIN_MS, a bad sync byte, a wrong
 * type, an oversized length or a bad checksum is a link failure: the hook
 * fails and link_error() says why. */
#include <string.h>

#include "fw.h"

#define UART0_DATA (*(volatile uint32_t *)0x40004000u)
#define UART0_STATE (*(volatile uint32_t *)0x40004004u)
#define UART0_CTRL (*(volatile uint32_t *)0x40004008u)
#define UART0_INTCLEAR (*(volatile uint32_t *)0x4000400Cu)
#define UART0_BAUDDIV (*(volatile uint32_t *)0x40004010u)
#define STATE_TX_FULL 1u
#define STATE_RX_FULL 2u
#define CTRL_TX_EN 1u
#define CTRL_RX_EN 2u
#define CTRL_RX_INT_EN 8u
#define INT_RX 2u
#define UART0_RX_IRQ 0u  /* mps2-an386: UART0 RX is external interrupt 0 */
#define NVIC_ISER0 (*(volatile uint32_t *)0xE000E100u)
#define NVIC_ICPR0 (*(volatile uint32_t *)0xE000E280u)
#define SYST_CSR (*(volatile uint32_t *)0xE000E010u)
#define SYST_RVR (*(volatile uint32_t *)0xE000E014u)
#define SYST_CVR (*(volatile uint32_t *)0xE000E018u)
#define SYST_ENABLE_TICKINT_CPUCLK 7u
#define SCB_ICSR (*(volatile uint32_t *)0xE000ED04u)
#define ICSR_PENDSTCLR (1u << 25)

#define SYNC 0x7E
#define LINK_MARGIN_MS 3000u   /* the bridge's own latency on top of a command's timeout */
#define LINK_DATA_MAX 16384u   /* most payload bytes one SEND or RECV moves */
#define CONFIG_MAX 12288u      /* the HELLO answer: URL, CA, paths */
#define SOCK 1                 /* one connection at a time, as on a modem */

/* Commands (firmware -> bridge) and their replies (bridge -> firmware). */
enum {
    CMD_HELLO = 'h', REP_HELLO = 'H',   /* "fota-fw 1" -> configuration TLVs */
    CMD_OPEN = 'o', REP_OPEN = 'O',     /* timeout u32, port u16, host -> status i32 */
    CMD_SEND = 's', REP_SEND = 'S',     /* timeout u32, data -> sent i32 */
    CMD_RECV = 'r', REP_RECV = 'R',     /* timeout u32, max u16 -> status i32, data */
    CMD_CLOSE = 'c', REP_CLOSE = 'C',   /* - -> status i32 */
    CMD_TIME = 't', REP_TIME = 'T',     /* - -> unix seconds u64 */
    CMD_RANDOM = 'n', REP_RANDOM = 'N', /* count u16 -> bytes */
};

static const char *error = "";
static uint32_t frames;
static bool open_;

const char *link_error(void) { return error; }
uint32_t link_frames(void) { return frames; }

static void fail(const char *why) {
    if (error[0] == '\0') {
        error = why;
    }
}

/* ---- UART ---------------------------------------------------------------- */

/* The receive wait sleeps in WFI instead of polling the UART: QEMU hands
 * the UART one byte per main-loop iteration, and a vCPU spinning on the
 * status register competes with that loop (measured: 12 KB/s polling,
 * 36 KB/s with WFI). Interrupts stay
 * masked (PRIMASK): a pending one still ends WFI, and is cleared by hand.
 * The UART's RX interrupt wakes the core for a byte, SysTick every
 * millisecond for the timeout. */
static void uart_init(void) {
    __asm__ volatile("cpsid i" ::: "memory");
    UART0_BAUDDIV = 16;  /* the smallest valid divider; QEMU does not pace the bytes */
    UART0_CTRL = CTRL_TX_EN | CTRL_RX_EN | CTRL_RX_INT_EN;
    NVIC_ISER0 = 1u << UART0_RX_IRQ;
    SYST_RVR = CLOCK_HZ / 1000u - 1u;
    SYST_CVR = 0;
    SYST_CSR = SYST_ENABLE_TICKINT_CPUCLK;
}

static void uart_put(uint8_t c) {
    while (UART0_STATE & STATE_TX_FULL) {
    }
    UART0_DATA = c;
}

/* A byte, or -1 when none arrived before `deadline` (clock ticks). */
static int uart_get(uint64_t deadline) {
    while (!(UART0_STATE & STATE_RX_FULL)) {
        if (clock_ticks() >= deadline) {
            return -1;
        }
        UART0_INTCLEAR = INT_RX;
        NVIC_ICPR0 = 1u << UART0_RX_IRQ;
        SCB_ICSR = ICSR_PENDSTCLR;
        if (!(UART0_STATE & STATE_RX_FULL)) {
            __asm__ volatile("wfi" ::: "memory");
        }
    }
    return (int)(UART0_DATA & 0xFFu);
}

/* ---- frames ------------------------------------------------------------- */

struct fletcher {
    uint32_t a, b;
};

static void sum(struct fletcher *f, const uint8_t *p, size_t n) {
    for (size_t i = 0; i < n; i++) {
        f->a = (f->a + p[i]) % 255u;
        f->b = (f->b + f->a) % 255u;
    }
}

static void put_bytes(struct fletcher *f, const uint8_t *p, size_t n) {
    sum(f, p, n);
    for (size_t i = 0; i < n; i++) {
        uart_put(p[i]);
    }
}

/* Sends one frame whose payload is `a` then `b` (either may be empty). */
static void send_frame(uint8_t type, const void *a, size_t alen, const void *b, size_t blen) {
    size_t len = alen + blen;
    uint8_t head[3] = {type, (uint8_t)len, (uint8_t)(len >> 8)};
    struct fletcher f = {0, 0};
    uart_put(SYNC);
    put_bytes(&f, head, sizeof head);
    put_bytes(&f, a, alen);
    put_bytes(&f, b, blen);
    uart_put((uint8_t)f.a);
    uart_put((uint8_t)f.b);
    frames++;
}

static bool get_bytes(struct fletcher *f, uint8_t *p, size_t n, uint64_t deadline) {
    for (size_t i = 0; i < n; i++) {
        int c = uart_get(deadline);
        if (c < 0) {
            fail("link: no reply from the bridge in time");
            return false;
        }
        p[i] = (uint8_t)c;
    }
    if (f != NULL) {
        sum(f, p, n);
    }
    return true;
}

/* Receives the reply of type `type` within `timeout_ms` (+ the margin): the
 * first `fixed_len` payload bytes into `fixed` (they must be there), the
 * rest, at most `data_max`, into `data`. Returns the number of bytes put
 * into `data`, or -1 on a link failure. */
static int32_t get_reply(uint8_t type, void *fixed, size_t fixed_len, void *data, size_t data_max,
                         uint32_t timeout_ms) {
    uint64_t deadline = clock_ticks() + (uint64_t)(timeout_ms + LINK_MARGIN_MS) * (CLOCK_HZ / 1000u);
    uint8_t sync, head[3], check[2];
    struct fletcher f = {0, 0};
    if (!get_bytes(NULL, &sync, 1, deadline)) {
        return -1;
    }
    if (sync != SYNC) {
        fail("link: bad sync byte");
        return -1;
    }
    if (!get_bytes(&f, head, sizeof head, deadline)) {
        return -1;
    }
    size_t len = (size_t)head[1] | (size_t)head[2] << 8;
    if (head[0] != type) {
        fail("link: unexpected reply type");
        return -1;
    }
    if (len < fixed_len || len - fixed_len > data_max) {
        fail("link: reply length out of range");
        return -1;
    }
    if (!get_bytes(&f, fixed, fixed_len, deadline) ||
        !get_bytes(&f, data, len - fixed_len, deadline) ||
        !get_bytes(NULL, check, sizeof check, deadline)) {
        return -1;
    }
    if (check[0] != f.a || check[1] != f.b) {
        fail("link: bad checksum");
        return -1;
    }
    frames++;
    return (int32_t)(len - fixed_len);
}

static void put_u32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) {
        p[i] = (uint8_t)(v >> (8 * i));
    }
}

static uint32_t get_u32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* A command whose reply `rep` is one i32 status; -1 on a link failure. */
static int32_t status_command(uint8_t cmd, uint8_t rep, const void *a, size_t alen, const void *b,
                              size_t blen, uint32_t timeout_ms) {
    uint8_t st[4];
    send_frame(cmd, a, alen, b, blen);
    if (get_reply(rep, st, sizeof st, NULL, 0, timeout_ms) < 0) {
        return -1;
    }
    return (int32_t)get_u32(st);
}

/* ---- configuration, time, random ---------------------------------------- */

static uint8_t config[CONFIG_MAX + 1];

int32_t link_start(struct test_config *cfg) {
    static const char hello[] = "fota-fw 1";
    uart_init();
    memset(cfg, 0, sizeof *cfg);
    send_frame(CMD_HELLO, hello, sizeof hello - 1, NULL, 0);
    int32_t n = get_reply(REP_HELLO, NULL, 0, config, CONFIG_MAX, 2000);
    if (n < 0) {
        return -1;
    }
    /* TLVs: tag (1), length (2, LE), value; each string value is followed
     * by a NUL in the buffer (the bridge sends one, checked below). */
    for (int32_t at = 0; at < n;) {
        if (n - at < 3) {
            fail("link: truncated configuration");
            return -1;
        }
        uint8_t tag = config[at];
        size_t len = (size_t)config[at + 1] | (size_t)config[at + 2] << 8;
        const uint8_t *v = config + at + 3;
        if (len > (size_t)(n - at - 3)) {
            fail("link: configuration value out of range");
            return -1;
        }
        uint32_t u = len >= 4 ? get_u32(v) : 0;
        switch (tag) {
        case 'u': cfg->url = (const char *)v; break;
        case 'c': cfg->ca = v; cfg->ca_len = len; break;
        case 'd': cfg->dump_path = (const char *)v; break;
        case 'r': cfg->expect_result = (int32_t)u; break;
        case 'l': cfg->expect_len = u; break;
        case 'm': cfg->max_retries = u; break;
        case 'w': cfg->retry_delay_ms = u; break;
        case 'i': cfg->idle_timeout_ms = u; break;
        case 'x': cfg->timeout_ms = u; break;
        case 'k': cfg->image_key = v; cfg->image_key_len = len; break;
        case 'h': cfg->image_sha256 = v; break;
        case 'v': cfg->version = (const char *)v; break;
        case 'a': cfg->allow_downgrade = u != 0; break;
        case 's': cfg->security_counter = u; break;
        case 'b': cfg->read_back = u != 0; break;
        case 'e': cfg->expect_reason = u; break;
        case 'f': cfg->stuck_bit_at = u; break;
        case 'p': cfg->state_interval = u; break;
        case 'g': cfg->chip_path = (const char *)v; break;
        default: fail("link: unknown configuration tag"); return -1;
        }
        if (tag == 'h' && len != 32) {
            fail("link: expected SHA-256 not 32 bytes");
            return -1;
        }
        if ((tag == 'u' || tag == 'd' || tag == 'v' || tag == 'g') &&
            (len == 0 || v[len - 1] != '\0')) {
            fail("link: configuration string without NUL");
            return -1;
        }
        at += 3 + (int32_t)len;
    }
    if (cfg->url == NULL) {
        fail("link: configuration without a URL");
        return -1;
    }
    return 0;
}

uint64_t link_unix_time(void) {
    uint8_t t[8];
    send_frame(CMD_TIME, NULL, 0, NULL, 0);
    if (get_reply(REP_TIME, t, sizeof t, NULL, 0, 0) < 0) {
        return 0;  /* unknown: fota then skips the validity check, and says so */
    }
    return (uint64_t)get_u32(t) | (uint64_t)get_u32(t + 4) << 32;
}

int32_t link_random(uint8_t *buf, size_t len) {
    while (len > 0) {
        uint16_t n = len < 256 ? (uint16_t)len : 256;
        uint8_t req[2] = {(uint8_t)n, (uint8_t)(n >> 8)};
        send_frame(CMD_RANDOM, req, sizeof req, NULL, 0);
        if (get_reply(REP_RANDOM, buf, n, NULL, 0, 0) < 0) {
            return -1;
        }
        buf += n;
        len -= n;
    }
    return 0;
}

/* ---- the net hooks ------------------------------------------------------- */

static int32_t open_socket(const char *host, uint16_t port, uint32_t timeout_ms) {
    if (open_) {
        fail("connect: previous connection not closed");
        return -1;
    }
    size_t host_len = strlen(host);
    uint8_t head[6];
    put_u32(head, timeout_ms);
    head[4] = (uint8_t)port;
    head[5] = (uint8_t)(port >> 8);
    int32_t st = status_command(CMD_OPEN, REP_OPEN, head, sizeof head, host, host_len, timeout_ms);
    if (st < 0) {
        return st;
    }
    open_ = true;
    return SOCK;
}

static int32_t send_data(int32_t sock, const uint8_t *buf, size_t len, uint32_t timeout_ms) {
    if (sock != SOCK || !open_) {
        fail("send: bad socket");
        return -1;
    }
    uint8_t head[4];
    put_u32(head, timeout_ms);
    size_t n = len < LINK_DATA_MAX ? len : LINK_DATA_MAX;
    return status_command(CMD_SEND, REP_SEND, head, sizeof head, buf, n, timeout_ms);
}

static int32_t recv_data(int32_t sock, uint8_t *buf, size_t len, uint32_t timeout_ms) {
    if (sock != SOCK || !open_) {
        fail("recv: bad socket");
        return -1;
    }
    size_t max = len < LINK_DATA_MAX ? len : LINK_DATA_MAX;
    uint8_t head[6], st[4];
    put_u32(head, timeout_ms);
    head[4] = (uint8_t)max;
    head[5] = (uint8_t)(max >> 8);
    send_frame(CMD_RECV, head, sizeof head, NULL, 0);
    int32_t n = get_reply(REP_RECV, st, sizeof st, buf, max, timeout_ms);
    if (n < 0) {
        return -1;
    }
    int32_t status = (int32_t)get_u32(st);
    if (status > 0 && status != n) {
        fail("link: RECV status does not match its data");
        return -1;
    }
    return status;  /* > 0 bytes, 0 closed, FOTA_NET_WOULD_BLOCK, < 0 error */
}

static void close_socket(int32_t sock) {
    if (sock != SOCK || !open_) {
        fail("close: bad socket or closed twice");
        return;
    }
    open_ = false;
    (void)status_command(CMD_CLOSE, REP_CLOSE, NULL, 0, NULL, 0, 0);
}

/* The hooks: their time counts as the platform's, not fota's (clock.c). */
static int32_t net_connect(void *ctx, const char *host, uint16_t port, uint32_t timeout_ms) {
    (void)ctx;
    hook_enter();
    int32_t r = open_socket(host, port, timeout_ms);
    hook_leave();
    return r;
}

static int32_t net_send(void *ctx, int32_t sock, const uint8_t *buf, size_t len, uint32_t timeout_ms) {
    (void)ctx;
    hook_enter();
    int32_t r = send_data(sock, buf, len, timeout_ms);
    hook_leave();
    return r;
}

static int32_t net_recv(void *ctx, int32_t sock, uint8_t *buf, size_t len, uint32_t timeout_ms) {
    (void)ctx;
    hook_enter();
    int32_t r = recv_data(sock, buf, len, timeout_ms);
    hook_leave();
    return r;
}

static void net_close(void *ctx, int32_t sock) {
    (void)ctx;
    hook_enter();
    close_socket(sock);
    hook_leave();
}

const fota_net_ops_t link_net_ops = {
    .ctx = NULL,
    .connect = net_connect,
    .send = net_send,
    .recv = net_recv,
    .close = net_close,
};
