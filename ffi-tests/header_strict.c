/*
 * fota.h as a user's compiler sees it: compiled by CTest (ffi-tests/CMakeLists.txt)
 * with -std=c11 / -std=c++11, -Wall -Wextra -pedantic -Werror and a plain -I
 * (CMake passes an imported target's include directory as -isystem, which
 * hides the header's warnings), once per build configuration: the macros
 * FOTA_RX_16K, FOTA_RX_64K, FOTA_TLS_4K_RECORDS as the CMake module defines
 * them, and EXPECT_RX_BUF / EXPECT_TLS_RX_BUF the values the header must
 * give. A macro defined twice with two values (a warning) fails the build.
 */
#include "fota.h"

#ifdef __cplusplus
#define FOTA_STATIC_ASSERT(cond, msg) static_assert(cond, msg)
#else
#define FOTA_STATIC_ASSERT(cond, msg) _Static_assert(cond, msg)
#endif

FOTA_STATIC_ASSERT(FOTA_RX_BUF == EXPECT_RX_BUF, "FOTA_RX_BUF of this configuration");
FOTA_STATIC_ASSERT(FOTA_TLS_RX_BUF == EXPECT_TLS_RX_BUF, "FOTA_TLS_RX_BUF of this configuration");
FOTA_STATIC_ASSERT((FOTA_RX_BUF & (FOTA_RX_BUF - 1)) == 0, "FOTA_RX_BUF is a power of two");

/* The hook and option types are usable as declared. */
static int32_t recv_hook(void *ctx, int32_t sock, uint8_t *buf, size_t len, uint32_t timeout_ms)
{
    (void)ctx;
    (void)sock;
    (void)buf;
    (void)len;
    (void)timeout_ms;
    return FOTA_NET_WOULD_BLOCK;
}

int main(void)
{
    static uint8_t rx[FOTA_RX_BUF];
    fota_net_ops_t net;
    fota_opts_t opts;
    net.recv = recv_hook;
    opts.timeout_ms = FOTA_DEFAULT_TIMEOUT_MS;
    return net.recv(NULL, 0, rx, sizeof rx, opts.timeout_ms) == FOTA_NET_WOULD_BLOCK ? 0 : 1;
}
