/* Per-layer counts collected by the DMX_LAYER_BEGIN/END hooks (dmx_target.h). */
#ifndef DMX_PROFILE_H
#define DMX_PROFILE_H

#include <stdint.h>

typedef struct {
    uint64_t ticks;   /* counter ticks inside the layer, hook overhead removed */
    uint32_t calls;   /* times the layer ran (1 for a plain forward pass) */
    const char *name; /* as given to DMX_LAYER_END */
} dmx_layer_count_t;

/* Measures the cost of one empty BEGIN/END pair, later subtracted from every layer. */
void dmx_prof_calibrate(void);
void dmx_prof_reset(void);
uint64_t dmx_prof_overhead(void);
/* What the hooks of the layers that ran cost in all (to take out of the model's total). */
uint64_t dmx_prof_hook_ticks(void);
/* Number of layer slots (DMX_NUM_LAYERS) and each slot's count. */
int dmx_prof_num_layers(void);
const dmx_layer_count_t *dmx_prof_layer(int index);
/* Hooks that named an index outside [0, DMX_NUM_LAYERS) or ended a layer never begun. */
uint32_t dmx_prof_errors(void);

#endif /* DMX_PROFILE_H */
