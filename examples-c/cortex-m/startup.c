/* Startup for the mps2-an386 (Cortex-M4F): vector table, reset handler that
 * paints the stack, copies .data, zeroes .bss and enables the FPU, and fault
 * handlers that report over semihosting. */
#include <stdint.h>
#include <string.h>

#include "semihost.h"
#include "stack.h"

#define STR_(x) #x
#define STR(x) STR_(x)

extern uint32_t __data_start[], __data_end[], __data_load[];
extern uint32_t __bss_start[], __bss_end[];
extern uint32_t __stack_bottom[], __stack_top[];

int main(void);
void Reset_Handler(void);
static void fault(const char *name, uint32_t code);
static void NMI_Handler(void) { fault("NMI", 101); }
static void HardFault_Handler(void) { fault("HardFault", 102); }
static void MemManage_Handler(void) { fault("MemManage", 103); }
static void BusFault_Handler(void) { fault("BusFault", 104); }
static void UsageFault_Handler(void) { fault("UsageFault", 105); }
static void Default_Handler(void) { fault("unexpected interrupt", 106); }

__attribute__((section(".isr_vector"), used))
static void (*const vector_table[16 + 32])(void) = {
    (void (*)(void))(uintptr_t)__stack_top,
    Reset_Handler,
    NMI_Handler,
    HardFault_Handler,
    MemManage_Handler,
    BusFault_Handler,
    UsageFault_Handler,
    0, 0, 0, 0,
    Default_Handler, /* SVCall */
    Default_Handler, /* DebugMonitor */
    0,
    Default_Handler, /* PendSV */
    Default_Handler, /* SysTick */
    [16 ... 16 + 31] = Default_Handler,
};

__attribute__((noreturn, used)) void reset_c(void);
__attribute__((noreturn, used)) void reset_c(void) {
    /* .data from its load address in flash, .bss to zero. */
    uint32_t *src = __data_load;
    for (uint32_t *dst = __data_start; dst < __data_end;) {
        *dst++ = *src++;
    }
    for (uint32_t *dst = __bss_start; dst < __bss_end;) {
        *dst++ = 0;
    }
    /* Full access to CP10/CP11: code built for -mfloat-abi=hard may use the FPU. */
    volatile uint32_t *cpacr = (volatile uint32_t *)0xE000ED88u;
    *cpacr |= 0xFu << 20;
    __asm__ volatile("dsb\n\tisb" ::: "memory");
    sh_exit((uint32_t)main());
}

/* Naked: runs before anything uses the stack, so it can paint all of it
 * (from __stack_bottom up to the initial SP at __stack_top). */
__attribute__((naked, noreturn)) void Reset_Handler(void) {
    __asm__ volatile(
        "ldr r0, =__stack_bottom\n\t"
        "ldr r1, =__stack_top\n\t"
        "ldr r2, =" STR(STACK_PAINT) "\n\t"
        "1: cmp r0, r1\n\t"
        "bhs 2f\n\t"
        "str r2, [r0], #4\n\t"
        "b 1b\n\t"
        "2: b reset_c\n\t");
}

static void fault(const char *name, uint32_t code) {
    sh_puts("FAULT: ");
    sh_puts(name);
    sh_puts("\n");
    sh_exit(code);
}

uint32_t stack_high_water(void) {
    const uint32_t *p = __stack_bottom;
    while (p < __stack_top && *p == STACK_PAINT) {
        p++;
    }
    return (uint32_t)((uintptr_t)__stack_top - (uintptr_t)p);
}

uint32_t stack_size(void) {
    return (uint32_t)((uintptr_t)__stack_top - (uintptr_t)__stack_bottom);
}

uint32_t stack_depth_here(void) {
    uint32_t sp;
    __asm__ volatile("mov %0, sp" : "=r"(sp));
    return (uint32_t)((uintptr_t)__stack_top - sp);
}

void stack_repaint(void) {
    /* Everything below this frame (with a margin) is free: paint it again. */
    uint32_t sp;
    __asm__ volatile("mov %0, sp" : "=r"(sp));
    for (uint32_t *p = __stack_bottom; (uintptr_t)p < sp - 64u; p++) {
        *(volatile uint32_t *)p = STACK_PAINT;
    }
}
