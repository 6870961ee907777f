/* Time on the mps2-an386: the CMSDK APB timer 0 counts down at the 25 MHz
 * system clock; a 64-bit tick count is extended in software (the 32-bit
 * counter wraps every 171 s, and it is read far more often than that).
 *
 * Under `qemu-system-arm -icount shift=0` one guest instruction advances the
 * virtual clock by 1 ns, so a tick is 40 instructions: the firmware figures
 * (scripts/firmware-figures.sh) count fota's instructions with this timer,
 * minus the ticks spent inside the hooks (waiting on the wire, in sleep_ms). */
#include "fw.h"

#define TIMER0_CTRL (*(volatile uint32_t *)0x40000000u)
#define TIMER0_VALUE (*(volatile uint32_t *)0x40000004u)
#define TIMER0_RELOAD (*(volatile uint32_t *)0x40000008u)
#define TIMER_ENABLE 1u

static uint32_t last_raw;
static uint64_t ticks;
static uint64_t hook_since, hook_total;
static uint32_t hook_depth;

void clock_init(void) {
    TIMER0_CTRL = 0;
    TIMER0_RELOAD = 0xFFFFFFFFu;
    TIMER0_VALUE = 0xFFFFFFFFu;
    TIMER0_CTRL = TIMER_ENABLE;
    last_raw = ~TIMER0_VALUE;
    ticks = 0;
}

uint64_t clock_ticks(void) {
    uint32_t raw = ~TIMER0_VALUE;  /* counts down: the complement counts up */
    ticks += (uint32_t)(raw - last_raw);
    last_raw = raw;
    return ticks;
}

uint32_t clock_ms(void) { return (uint32_t)(clock_ticks() / (CLOCK_HZ / 1000u)); }

void clock_sleep_ms(uint32_t ms) {
    uint64_t end = clock_ticks() + (uint64_t)ms * (CLOCK_HZ / 1000u);
    while (clock_ticks() < end) {
    }
}

void hook_enter(void) {
    if (hook_depth++ == 0) {
        hook_since = clock_ticks();
    }
}

void hook_leave(void) {
    if (hook_depth > 0 && --hook_depth == 0) {
        hook_total += clock_ticks() - hook_since;
    }
}

uint64_t hook_ticks(void) { return hook_total; }
