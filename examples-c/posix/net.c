/*
 * fota_net_ops_t over BSD sockets.
 *
 * Every hook is bounded by the timeout fota passes in: sockets are
 * non-blocking and every wait is a poll(). fota asks for waits of at most
 * FOTA_ABORT_SLICE_MS (250 ms) so that fota_abort() is noticed quickly; a
 * wait that ends with nothing moved is FOTA_NET_WOULD_BLOCK, and fota keeps
 * the idle timeout and the overall deadline itself.
 *
 * send and recv try the socket first and poll() only when it would block:
 * during a download the next bytes are usually queued already, and a poll()
 * before every recv() would double the system calls per byte. recv() takes
 * as much as fota offers (what is free of its receive buffer, FOTA_RX_BUF).
 *
 * Limitation: getaddrinfo() cannot be bounded by a timeout; DNS uses the
 * resolver's own (see resolv.conf(5), `options timeout:`).
 *
 * FOTA_HOSTS="iot.openluat.com=127.0.0.1:8080,xxxxxx.com=127.0.0.1:8081"
 * maps host names to other addresses (and ports) before resolving, like an
 * /etc/hosts that also rewrites the port: tests keep the URLs of the LuatOS
 * examples and reach local servers. Only connect() is affected: TLS still
 * verifies the name of the URL.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "platform.h"

#ifndef MSG_NOSIGNAL
#define MSG_NOSIGNAL 0 /* macOS: SO_NOSIGPIPE is set on the socket instead */
#endif

/* Error value of the hooks: negative and distinct from FOTA_NET_WOULD_BLOCK. */
#define NET_ERROR (-1)

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/*
 * Waits until `fd` is ready for `events` or `timeout_ms` passed; a signal
 * (EINTR) resumes the wait with the time that is left.
 * Returns 1 ready (or an error/hang-up condition to be read by the caller),
 * 0 timed out, -1 poll failed.
 */
static int wait_fd(int fd, short events, uint32_t timeout_ms)
{
    const uint64_t deadline = mono_ms() + timeout_ms;
    for (;;) {
        uint64_t now = mono_ms();
        uint64_t left = now < deadline ? deadline - now : 0;
        struct pollfd p = { .fd = fd, .events = events, .revents = 0 };
        int r = poll(&p, 1, left > INT_MAX ? INT_MAX : (int)left);
        if (r > 0) {
            return 1;
        }
        if (r == 0) {
            if (mono_ms() >= deadline) {
                return 0;
            }
            continue; /* woke early (clamped wait): keep waiting */
        }
        if (errno != EINTR) {
            return -1;
        }
        if (mono_ms() >= deadline) {
            return 0;
        }
    }
}

/* A non-blocking, close-on-exec TCP socket for `ai`, or -1. */
static int open_socket(const struct addrinfo *ai)
{
    int fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
    if (fd < 0) {
        return -1;
    }
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0 || fcntl(fd, F_SETFD, FD_CLOEXEC) < 0) {
        close(fd);
        return -1;
    }
    int one = 1;
#ifdef SO_NOSIGPIPE
    (void)setsockopt(fd, SOL_SOCKET, SO_NOSIGPIPE, &one, sizeof one);
#endif
    /* No Nagle: over TLS the client's Finished and the request go out as
       separate small records, and waiting for the server's delayed ACK of
       the first held the request back 40 ms (as curl, which sets it too). */
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

/*
 * Looks `host` up in FOTA_HOSTS (comma-separated `name=addr[:port]`, IPv6
 * addresses in brackets, names compared case-insensitively). On a match,
 * copies addr into `addr` (NUL-terminated) and sets `*port` when the entry
 * has one; otherwise leaves both alone. Returns false for an entry too long
 * for `addr` or with a bad port (the connect then fails).
 */
static bool map_host(const char *host, char *addr, size_t addr_size, uint16_t *port)
{
    const char *e = getenv("FOTA_HOSTS");
    const size_t host_len = strlen(host);
    while (e != NULL && *e != '\0') {
        const char *end = strchr(e, ',');
        end = end != NULL ? end : e + strlen(e);
        const char *eq = memchr(e, '=', (size_t)(end - e));
        const char *next = *end == ',' ? end + 1 : NULL;
        if (eq == NULL || (size_t)(eq - e) != host_len || strncasecmp(e, host, host_len) != 0) {
            e = next;
            continue;
        }
        const char *a = eq + 1;
        const char *a_end;
        const char *colon;
        if (*a == '[') { /* [v6]:port */
            const char *close = memchr(a, ']', (size_t)(end - a));
            if (close == NULL) {
                return false;
            }
            colon = close + 1 < end && close[1] == ':' ? close + 1 : NULL;
            a_end = close;
            a++;
        } else {
            colon = memchr(a, ':', (size_t)(end - a));
            a_end = colon != NULL ? colon : end;
        }
        if (a_end == a || (size_t)(a_end - a) >= addr_size) {
            return false;
        }
        memcpy(addr, a, (size_t)(a_end - a));
        addr[a_end - a] = '\0';
        if (colon != NULL) {
            char digits[6];
            size_t n = (size_t)(end - colon - 1);
            char *stop = NULL;
            if (n == 0 || n >= sizeof digits) {
                return false;
            }
            memcpy(digits, colon + 1, n);
            digits[n] = '\0';
            unsigned long p = strtoul(digits, &stop, 10);
            if (*stop != '\0' || p == 0 || p > UINT16_MAX) {
                return false;
            }
            *port = (uint16_t)p;
        }
        return true;
    }
    return true;
}

/*
 * connect hook.
 * Contract: resolves `host` (a name or an IP literal, IPv6 without brackets)
 * and connects to `port` within `timeout_ms`. Returns a socket handle >= 0,
 * or < 0 on failure (fota reports FOTA_ERR_CONNECT).
 *
 * Every address getaddrinfo() returns (IPv4 and IPv6, in the resolver's
 * order) is tried in turn, all within the one `timeout_ms`.
 *
 * For tests: with FOTA_POSIX_CONNECT_ADDR set (an IP literal), that address
 * is connected instead of `host`'s, like curl's --connect-to; TLS still
 * sends and verifies `host`, so certificates for names without DNS entries
 * can be tried on loopback.
 */
static int32_t net_connect(void *ctx, const char *host, uint16_t port, uint32_t timeout_ms)
{
    (void)ctx;
    const uint64_t deadline = mono_ms() + timeout_ms;
    char mapped[256] = "";
    if (!map_host(host, mapped, sizeof mapped, &port)) {
        return NET_ERROR;
    }
    if (mapped[0] != '\0') {
        host = mapped;
    }
    char service[8];
    snprintf(service, sizeof service, "%u", (unsigned)port);

    struct addrinfo hints;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC; /* IPv4 and IPv6 */
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    struct addrinfo *list = NULL;
    const char *addr = getenv("FOTA_POSIX_CONNECT_ADDR");
    if (getaddrinfo(addr != NULL && addr[0] != '\0' ? addr : host, service, &hints, &list) != 0) {
        return NET_ERROR;
    }

    int result = NET_ERROR;
    for (const struct addrinfo *ai = list; ai != NULL; ai = ai->ai_next) {
        uint64_t now = mono_ms();
        if (now >= deadline) {
            break;
        }
        int fd = open_socket(ai);
        if (fd < 0) {
            continue;
        }
        int r = connect(fd, ai->ai_addr, ai->ai_addrlen);
        if (r != 0 && (errno == EINPROGRESS || errno == EINTR)) {
            /* In progress: writable means finished, SO_ERROR tells how. */
            int err = 0;
            socklen_t len = sizeof err;
            if (wait_fd(fd, POLLOUT, (uint32_t)(deadline - now)) == 1
                && getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err == 0) {
                r = 0;
            }
        }
        if (r == 0 && fd <= INT32_MAX) {
            result = (int32_t)fd;
            break;
        }
        close(fd);
    }
    freeaddrinfo(list);
    return result;
}

/*
 * send hook.
 * Contract: sends up to `len` bytes of `buf`, waiting at most `timeout_ms`.
 * Returns the bytes sent (1..len), FOTA_NET_WOULD_BLOCK if nothing could be
 * sent in time, any other value <= 0 on error. MSG_NOSIGNAL: a peer that
 * closed gives EPIPE (an error), not SIGPIPE.
 */
static int32_t net_send(void *ctx, int32_t sock, const uint8_t *buf, size_t len, uint32_t timeout_ms)
{
    (void)ctx;
    if (len > INT32_MAX) {
        len = INT32_MAX;
    }
    bool waited = false;
    for (;;) {
        ssize_t n = send(sock, buf, len, MSG_NOSIGNAL);
        if (n > 0) {
            return (int32_t)n;
        }
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) {
            return NET_ERROR;
        }
        if (waited) { /* ready, yet nothing went: give the time back to fota */
            return FOTA_NET_WOULD_BLOCK;
        }
        int w = wait_fd(sock, POLLOUT, timeout_ms);
        if (w == 0) {
            return FOTA_NET_WOULD_BLOCK;
        }
        if (w < 0) {
            return NET_ERROR;
        }
        waited = true;
    }
}

/*
 * recv hook.
 * Contract: receives up to `len` bytes into `buf`, waiting at most
 * `timeout_ms`. Returns the bytes received (1..len), 0 when the peer closed
 * the connection in an orderly way, FOTA_NET_WOULD_BLOCK when nothing arrived
 * in time, any other negative value on error (e.g. a reset connection).
 */
uint64_t posix_net_received;
size_t posix_net_recv_max;

static int32_t net_recv(void *ctx, int32_t sock, uint8_t *buf, size_t len, uint32_t timeout_ms)
{
    (void)ctx;
    if (len > INT32_MAX) {
        len = INT32_MAX;
    }
    if (posix_net_recv_max != 0 && len > posix_net_recv_max) {
        len = posix_net_recv_max;
    }
    bool waited = false;
    for (;;) {
        ssize_t n = recv(sock, buf, len, 0);
        if (n >= 0) {
            posix_net_received += (uint64_t)n;
            return (int32_t)n; /* 0: orderly close */
        }
        if (errno == EINTR) {
            continue;
        }
        if (errno != EAGAIN && errno != EWOULDBLOCK) {
            return NET_ERROR;
        }
        if (waited) { /* ready, yet nothing there: give the time back to fota */
            return FOTA_NET_WOULD_BLOCK;
        }
        int w = wait_fd(sock, POLLIN, timeout_ms);
        if (w == 0) {
            return FOTA_NET_WOULD_BLOCK;
        }
        if (w < 0) {
            return NET_ERROR;
        }
        waited = true;
    }
}

/*
 * close hook.
 * Contract: closes a handle returned by connect; fota calls it exactly once
 * per successful connect.
 */
static void net_close(void *ctx, int32_t sock)
{
    (void)ctx;
    close(sock);
}

void posix_net_ops(fota_net_ops_t *ops)
{
    ops->ctx = NULL;
    ops->connect = net_connect;
    ops->send = net_send;
    ops->recv = net_recv;
    ops->close = net_close;
}
