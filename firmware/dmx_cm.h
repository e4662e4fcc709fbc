/* The few Armv7-M / Armv8-M core registers the firmware harness touches.
 *
 * No CMSIS package is available here, so these are written from the Armv8-M
 * Architecture Reference Manual (System Control Space, B11). Only what the
 * startup code and the SysTick counter need; nothing model-specific.
 */
#ifndef DMX_CM_H
#define DMX_CM_H

#include <stdint.h>

#define DMX_REG32(addr) (*(volatile uint32_t *)(uintptr_t)(addr))
#define DMX_STR_(x) #x
#define DMX_STR(x) DMX_STR_(x) /* for the addresses used in startup.c's assembly */

/* System Control Block */
#define DMX_SCB_SHCSR_ADDR 0xE000ED24
#define DMX_SCB_CPACR_ADDR 0xE000ED88
#define DMX_SCB_ICSR DMX_REG32(0xE000ED04u)  /* Interrupt Control and State */
#define DMX_SCB_SHCSR DMX_REG32(DMX_SCB_SHCSR_ADDR) /* System Handler Control and State */
#define DMX_SCB_CFSR DMX_REG32(0xE000ED28u)  /* Configurable Fault Status */
#define DMX_SCB_HFSR DMX_REG32(0xE000ED2Cu)  /* HardFault Status */
#define DMX_SCB_CPACR DMX_REG32(DMX_SCB_CPACR_ADDR) /* Coprocessor Access Control */

#define DMX_ICSR_PENDSTSET (1u << 26) /* SysTick exception is pending */
#define DMX_CPACR_CP10_CP11_SHIFT 20  /* 0xF << 20: FPU and MVE, full access */
#define DMX_SHCSR_FAULTS_SHIFT 16     /* 0xF << 16: MemManage, BusFault, UsageFault, SecureFault */

/* SysTick */
#define DMX_SYST_CSR DMX_REG32(0xE000E010u)    /* Control and Status */
#define DMX_SYST_RVR DMX_REG32(0xE000E014u)    /* Reload Value */
#define DMX_SYST_CVR DMX_REG32(0xE000E018u)    /* Current Value */

#define DMX_SYST_CSR_ENABLE (1u << 0)
#define DMX_SYST_CSR_TICKINT (1u << 1)
#define DMX_SYST_CSR_CLKSOURCE_CPU (1u << 2)
#define DMX_SYST_MAX 0x00FFFFFFu               /* the counter is 24 bits wide */

static inline void dmx_dsb(void) { __asm volatile("dsb 0xF" ::: "memory"); }
static inline void dmx_isb(void) { __asm volatile("isb 0xF" ::: "memory"); }

static inline uint32_t dmx_irq_save(void)
{
    uint32_t primask;
    __asm volatile("mrs %0, primask\n\tcpsid i" : "=r"(primask)::"memory");
    return primask;
}

static inline void dmx_irq_restore(uint32_t primask)
{
    __asm volatile("msr primask, %0" ::"r"(primask) : "memory");
}

#endif /* DMX_CM_H */
