/* ARM semihosting on Cortex-M: `bkpt 0xAB` with the operation in r0 and its
 * argument in r1. QEMU needs `-semihosting-config enable=on,target=native`. */
#include "semihost.h"

#include <string.h>

#define SYS_OPEN 0x01
#define SYS_CLOSE 0x02
#define SYS_WRITE0 0x04
#define SYS_WRITE 0x05
#define OPEN_MODE_WB 5 /* fopen mode "wb" */
#define SYS_EXIT 0x18
#define SYS_EXIT_EXTENDED 0x20
#define ADP_STOPPED_APPLICATION_EXIT 0x20026

static uint32_t semihost(uint32_t op, const void *arg) {
    register uint32_t r0 __asm__("r0") = op;
    register const void *r1 __asm__("r1") = arg;
    __asm__ volatile("bkpt 0xAB" : "+r"(r0) : "r"(r1) : "memory");
    return r0;
}

void sh_puts(const char *s) { semihost(SYS_WRITE0, s); }

void sh_putu(uint32_t v) {
    char buf[11];
    char *p = buf + sizeof buf - 1;
    *p = '\0';
    do {
        *--p = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    sh_puts(p);
}

void sh_puthex(uint32_t v) {
    static const char digits[] = "0123456789abcdef";
    char buf[11] = "0x";
    for (int i = 0; i < 8; i++) {
        buf[2 + i] = digits[(v >> (28 - 4 * i)) & 0xf];
    }
    buf[10] = '\0';
    sh_puts(buf);
}

int sh_write_file(const char *path, const uint8_t *data, uint32_t len) {
    uint32_t open_args[3] = {(uint32_t)(uintptr_t)path, OPEN_MODE_WB, (uint32_t)strlen(path)};
    int32_t fd = (int32_t)semihost(SYS_OPEN, open_args);
    if (fd < 0) {
        return -1;
    }
    uint32_t write_args[3] = {(uint32_t)fd, (uint32_t)(uintptr_t)data, len};
    uint32_t left = semihost(SYS_WRITE, write_args);  /* bytes NOT written */
    uint32_t close_args[1] = {(uint32_t)fd};
    uint32_t closed = semihost(SYS_CLOSE, close_args);
    return left == 0 && closed == 0 ? 0 : -1;
}

void sh_exit(uint32_t code) {
    /* SYS_EXIT_EXTENDED carries the exit code on 32-bit ARM as well
     * (semihosting v2); plain SYS_EXIT can only say "success". */
    const uint32_t block[2] = {ADP_STOPPED_APPLICATION_EXIT, code};
    semihost(SYS_EXIT_EXTENDED, block);
    for (;;) {
        __asm__ volatile("wfi");
    }
}
