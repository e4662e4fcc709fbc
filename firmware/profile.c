/* Per-layer counting behind the DMX_LAYER_BEGIN/END hooks of the exported model.c. */
#include "profile.h"

#include "counter.h"
#include "model.h"

static dmx_layer_count_t dmx_layers[DMX_NUM_LAYERS];
static uint64_t dmx_begin_at[DMX_NUM_LAYERS];
static uint8_t dmx_open[DMX_NUM_LAYERS];
static uint64_t dmx_overhead;  /* ticks between the two counter reads of an empty layer */
static uint64_t dmx_pair_cost; /* ticks of a whole empty BEGIN/END pair, as seen from outside */
static uint32_t dmx_errors;

void dmx_prof_begin(int index)
{
    if (index < 0 || index >= DMX_NUM_LAYERS) {
        dmx_errors++;
        return;
    }
    dmx_open[index] = 1;
    dmx_begin_at[index] = dmx_counter_now();
}

void dmx_prof_end(int index, const char *name)
{
    uint64_t now = dmx_counter_now();
    if (index < 0 || index >= DMX_NUM_LAYERS || !dmx_open[index]) {
        dmx_errors++;
        return;
    }
    uint64_t spent = now - dmx_begin_at[index];
    dmx_open[index] = 0;
    dmx_layers[index].ticks += spent > dmx_overhead ? spent - dmx_overhead : 0;
    dmx_layers[index].calls++;
    dmx_layers[index].name = name;
}

void dmx_prof_reset(void)
{
    for (int i = 0; i < DMX_NUM_LAYERS; i++) {
        dmx_layers[i] = (dmx_layer_count_t){0, 0, 0};
        dmx_open[i] = 0;
    }
    dmx_errors = 0;
}

void dmx_prof_calibrate(void)
{
    uint64_t read_cost = dmx_counter_now();
    read_cost = dmx_counter_now() - read_cost;
    dmx_overhead = 0;
    dmx_prof_reset();
    uint64_t start = dmx_counter_now();
    dmx_prof_begin(0);
    dmx_prof_end(0, "");
    uint64_t pair = dmx_counter_now() - start;
    dmx_overhead = dmx_layers[0].ticks;
    dmx_pair_cost = pair > read_cost ? pair - read_cost : 0;
    dmx_prof_reset();
}

uint64_t dmx_prof_hook_ticks(void)
{
    uint64_t ticks = 0;
    for (int i = 0; i < DMX_NUM_LAYERS; i++)
        ticks += dmx_layers[i].calls * dmx_pair_cost;
    return ticks;
}

uint64_t dmx_prof_overhead(void)
{
    return dmx_overhead;
}

int dmx_prof_num_layers(void)
{
    return DMX_NUM_LAYERS;
}

const dmx_layer_count_t *dmx_prof_layer(int index)
{
    return &dmx_layers[index];
}

uint32_t dmx_prof_errors(void)
{
    return dmx_errors;
}
