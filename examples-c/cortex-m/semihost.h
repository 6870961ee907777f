/* ARM semihosting: console output, a host file and the exit code through the debugger (QEMU). */
#ifndef SEMIHOST_H
#define SEMIHOST_H

#include <stdint.h>

/* Writes a NUL-terminated string (SYS_WRITE0; QEMU 7.2 prints it on stderr). */
void sh_puts(const char *s);
/* Writes an unsigned decimal / a 0x-prefixed 8-digit hex number. */
void sh_putu(uint32_t v);
void sh_puthex(uint32_t v);
/* Writes `len` bytes into the host file `path` (created or truncated).
 * Returns 0, or -1 when the host refused. */
int sh_write_file(const char *path, const uint8_t *data, uint32_t len);
/* Ends the program with an exit code for the host (SYS_EXIT_EXTENDED). */
__attribute__((noreturn)) void sh_exit(uint32_t code);

#endif
