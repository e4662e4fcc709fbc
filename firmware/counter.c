/* SysTick as a 64-bit up-counter (see counter.h for what a tick is). */
#include "counter.h"

#include "dmx_cm.h"

static volatile uint32_t dmx_systick_wraps;

void dmx_systick_handler(void)
{
    dmx_systick_wraps++;
}

void dmx_counter_start(void)
{
    DMX_SYST_CSR = 0;
    DMX_SYST_RVR = DMX_SYST_MAX;
    DMX_SYST_CVR = 0; /* any write clears the counter; it reloads on the next tick */
    dmx_systick_wraps = 0;
    DMX_SYST_CSR = DMX_SYST_CSR_ENABLE | DMX_SYST_CSR_TICKINT | DMX_SYST_CSR_CLKSOURCE_CPU;
    dmx_dsb();
    dmx_isb();
    /* Until the first reload the counter reads 0, which would look like the end of a period. */
    while (DMX_SYST_CVR == 0) {
    }
}

uint64_t dmx_counter_now(void)
{
    /* The counter runs MAX..1, 0 (the SysTick exception becomes pending), then
     * reloads MAX. With interrupts masked, a pending SysTick is a wrap the
     * handler has not counted yet: read again and count it only once the
     * counter has reloaded. */
    uint32_t primask = dmx_irq_save();
    uint64_t wraps = dmx_systick_wraps;
    uint32_t value = DMX_SYST_CVR;
    if (DMX_SCB_ICSR & DMX_ICSR_PENDSTSET) {
        value = DMX_SYST_CVR;
        if (value != 0)
            wraps++;
    }
    dmx_irq_restore(primask);
    return (wraps << 24) + (DMX_SYST_MAX - value);
}
