/* Reset, vector table and the bare-metal glue newlib (rdimon) needs.
 *
 * Linked with `--specs=rdimon.specs -nostartfiles`: rdimon gives semihosting
 * stdio and exit(), but its crt0 is replaced by Reset_Handler below so the
 * FPU/MVE is enabled before any C code that might use it runs.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <unistd.h>

#include "dmx_cm.h"

/* Linker script symbols (an547.ld). */
extern uint32_t __stack_top;
extern uint8_t __data_start__, __data_end__, __data_load__;
extern uint8_t __bss_start__, __bss_end__;
extern uint8_t __arena_bss_start__, __arena_bss_end__;
extern uint8_t __heap_start__, __heap_end__;

extern int main(void);
extern void initialise_monitor_handles(void);
extern void dmx_systick_handler(void);

void Reset_Handler(void);
void dmx_fault_handler(void);
void dmx_unexpected_handler(void);

/* Exit status of the firmware when the CPU faults (main uses 0 and 1). */
#define DMX_EXIT_FAULT 3

#define DMX_NUM_IRQS 96 /* AN547 external interrupts; none are enabled */

typedef void (*dmx_vector_t)(void);

__attribute__((section(".vectors"), used))
const dmx_vector_t dmx_vectors[16 + DMX_NUM_IRQS] = {
    [0] = (dmx_vector_t)(uintptr_t)&__stack_top,
    [1] = Reset_Handler,
    [2] = dmx_fault_handler,      /* NMI */
    [3] = dmx_fault_handler,      /* HardFault */
    [4] = dmx_fault_handler,      /* MemManage */
    [5] = dmx_fault_handler,      /* BusFault */
    [6] = dmx_fault_handler,      /* UsageFault */
    [7] = dmx_fault_handler,      /* SecureFault */
    [11] = dmx_unexpected_handler, /* SVCall */
    [12] = dmx_unexpected_handler, /* DebugMonitor */
    [14] = dmx_unexpected_handler, /* PendSV */
    [15] = dmx_systick_handler,
    [16 ... 16 + DMX_NUM_IRQS - 1] = dmx_unexpected_handler,
};

/* Straight to the semihosting stdout handle: no stdio buffering, usable in a fault handler. */
static void dmx_fault_write(const char *s)
{
    (void)write(STDOUT_FILENO, s, strlen(s));
}

static void dmx_fault_hex(const char *label, uint32_t v)
{
    char buf[24];
    size_t n = 0;
    while (*label && n < 10)
        buf[n++] = *label++;
    buf[n++] = '0';
    buf[n++] = 'x';
    for (int shift = 28; shift >= 0; shift -= 4)
        buf[n++] = "0123456789abcdef"[(v >> shift) & 0xFu];
    buf[n++] = ' ';
    buf[n] = '\0';
    dmx_fault_write(buf);
}

/* A fault would otherwise hang until the runner's timeout: say what happened and stop. */
void dmx_fault_handler(void)
{
    uint32_t ipsr;
    __asm volatile("mrs %0, ipsr" : "=r"(ipsr));
    dmx_fault_write("FAULT ");
    dmx_fault_hex("exc=", ipsr & 0x1FFu);
    dmx_fault_hex("cfsr=", DMX_SCB_CFSR);
    dmx_fault_hex("hfsr=", DMX_SCB_HFSR);
    dmx_fault_write("\nFAIL cpu fault\n");
    _exit(DMX_EXIT_FAULT);
}

void dmx_unexpected_handler(void)
{
    dmx_fault_write("FAULT unexpected exception\nFAIL cpu fault\n");
    _exit(DMX_EXIT_FAULT);
}

/* Runs with the FPU/MVE already enabled: the compiler may use them from here on. */
__attribute__((noinline, used)) static void dmx_c_startup(void)
{
    memcpy(&__data_start__, &__data_load__, (size_t)(&__data_end__ - &__data_start__));
    memset(&__bss_start__, 0, (size_t)(&__bss_end__ - &__bss_start__));
    memset(&__arena_bss_start__, 0, (size_t)(&__arena_bss_end__ - &__arena_bss_start__));
    initialise_monitor_handles();
    exit(main());
}

/* Naked so no compiler-generated code (which could use FP/MVE registers) runs
 * before CPACR grants access to the coprocessors: that would lock the CPU up. */
__attribute__((naked, noreturn)) void Reset_Handler(void)
{
    __asm volatile(
        "ldr r0, =" DMX_STR(DMX_SCB_CPACR_ADDR) "\n\t"
        "ldr r1, [r0]\n\t"
        "orr r1, r1, #(0xF << " DMX_STR(DMX_CPACR_CP10_CP11_SHIFT) ")\n\t"
        "str r1, [r0]\n\t"
        "dsb 0xF\n\t"
        "isb 0xF\n\t"
        /* SHCSR: report faults by kind rather than all as HardFault */
        "ldr r0, =" DMX_STR(DMX_SCB_SHCSR_ADDR) "\n\t"
        "ldr r1, [r0]\n\t"
        "orr r1, r1, #(0xF << " DMX_STR(DMX_SHCSR_FAULTS_SHIFT) ")\n\t"
        "str r1, [r0]\n\t"
        "b dmx_c_startup\n\t"
        ".ltorg");
}

/* newlib calls these from exit() and __libc_init_array; there is nothing to run. */
void _init(void) {}
void _fini(void) {}

/* Heap for newlib's stdio buffers, bounded by the linker script (rdimon's own
 * _sbrk assumes the heap sits just below the stack, which this map does not). */
void *_sbrk(ptrdiff_t incr)
{
    static uint8_t *brk = &__heap_start__;
    if (incr < 0 || (size_t)incr > (size_t)(&__heap_end__ - brk)) {
        errno = ENOMEM;
        return (void *)-1;
    }
    uint8_t *prev = brk;
    brk += incr;
    return prev;
}
