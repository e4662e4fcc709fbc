/* Force-included (gcc -include) into every firmware source, the exported
 * model's included: it turns the model's per-layer hooks into counter reads
 * and places the weights in the flash-like QSPI region and the arena in RAM (an547.ld). */
#ifndef DMX_TARGET_H
#define DMX_TARGET_H

void dmx_prof_begin(int index);
void dmx_prof_end(int index, const char *name);

/* -DDMX_NO_LAYER_PROFILE leaves the hooks empty: only the total is counted. */
#ifndef DMX_NO_LAYER_PROFILE
#define DMX_LAYER_BEGIN(index, name) dmx_prof_begin(index)
#define DMX_LAYER_END(index, name) dmx_prof_end((index), (name))
#endif
#define DMX_WEIGHT_SECTION __attribute__((section(".dmx_weights")))
/* a .bss name keeps it zero-filled (NOBITS); an547.ld sends it to DTCM, ISRAM, SRAM or DDR (ARENA=) */
#define DMX_ARENA_SECTION __attribute__((section(".bss.dmx_arena")))

#endif /* DMX_TARGET_H */
