/* Deterministic cost counter: SysTick extended to 64 bits by counting its wraps.
 *
 * Under QEMU with `-icount shift=5,align=off,sleep=off` every instruction takes
 * 32 ns of virtual time and SysTick runs from the 32 MHz CPU clock, so one
 * instruction is 1.024 ticks and the count is the same on every run. On the
 * Arm FVP a tick is one (simulated) CPU cycle.
 */
#ifndef DMX_COUNTER_H
#define DMX_COUNTER_H

#include <stdint.h>

/* Ticks per 1000 instructions under QEMU -icount shift=5 on the AN547 (32 MHz). */
#define DMX_QEMU_TICKS_PER_KINSN 1024u

void dmx_counter_start(void);
uint64_t dmx_counter_now(void);

/* Ticks to instructions, rounded to nearest, for QEMU -icount shift=5. */
static inline uint64_t dmx_ticks_to_insn(uint64_t ticks)
{
    return (ticks * 1000u + DMX_QEMU_TICKS_PER_KINSN / 2u) / DMX_QEMU_TICKS_PER_KINSN;
}

#endif /* DMX_COUNTER_H */
