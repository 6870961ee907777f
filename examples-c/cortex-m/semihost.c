/* ARM semihosting on Cortex-M: `bkpt 0xAB` with the operation in r0 and its
 * argument in r1. QEMU needs `-semihosting-config enable=on,target=native`. */
#include "semihost.h"

#define SYS_WRITE0 0x04
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

void sh_exit(uint32_t code) {
    /* SYS_EXIT_EXTENDED carries the exit code on 32-bit ARM as well
     * (semihosting v2); plain SYS_EXIT can only say "success". */
    const uint32_t block[2] = {ADP_STOPPED_APPLICATION_EXIT, code};
    semihost(SYS_EXIT_EXTENDED, block);
    for (;;) {
        __asm__ volatile("wfi");
    }
}
