/* Stack high-water measurement: the stack is painted with STACK_PAINT at reset. */
#ifndef STACK_H
#define STACK_H

#include <stdint.h>

#define STACK_PAINT 0xA5C3E1F7

/* Deepest stack use since the last paint, in bytes from the top. */
uint32_t stack_high_water(void);
/* Size of the stack region. */
uint32_t stack_size(void);
/* Stack in use at the caller, in bytes from the top. */
uint32_t stack_depth_here(void);
/* Paints the free part of the stack again (below the caller's frame). */
void stack_repaint(void);

#endif
