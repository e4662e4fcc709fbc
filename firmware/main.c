/* Firmware harness: run the exported model once on input.h, count every
 * layer, compare with expected.h to the bit, report through semihosting.
 *
 * Output (one record per line, parsed by dmxgen/firmware.py; docs/firmware.md):
 *   DMX cpu=<cpu> layers=<n> inputs=<n> outputs=<n> output_type=<int8|float32|...>
 *   COUNTER systick overhead=<ticks> ticks_per_kinsn=1024
 *   LAYER <index> <name> <ticks> <instructions>
 *   TOTAL <ticks> <instructions>      (dmx_model_run, the hooks' own cost taken out)
 *   OUTPUT <first index> <value> ...
 *   MISMATCH <index> got <value> expected <value>
 *   PASS | FAIL <reason>
 * Exit status: 0 PASS, 1 FAIL, 3 CPU fault (startup.c).
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "counter.h"
#include "profile.h"

#include "model.h"
#include "input.h"
#include "expected.h"

#ifndef DMX_FW_CPU
#define DMX_FW_CPU "unknown"
#endif

#define DMX_VALUES_PER_LINE 16
#define DMX_MAX_MISMATCHES_SHOWN 8

static dmx_output_t dmx_output[DMX_OUTPUT_SIZE];

static void dmx_print_i8(int8_t v) { printf(" %d", (int)v); }
static void dmx_print_u8(uint8_t v) { printf(" %u", (unsigned)v); }
static void dmx_print_i16(int16_t v) { printf(" %d", (int)v); }
static void dmx_print_i32(int32_t v) { printf(" %" PRId32, v); }
/* %.9g prints every float so that it reads back to the same bits. */
static void dmx_print_f32(float v) { printf(" %.9g", (double)v); }

#define DMX_PRINT_VALUE(v)            \
    _Generic((v),                     \
        int8_t: dmx_print_i8,         \
        uint8_t: dmx_print_u8,        \
        int16_t: dmx_print_i16,       \
        int32_t: dmx_print_i32,       \
        float: dmx_print_f32)(v)

#define DMX_TYPE_NAME(v) \
    _Generic((v), int8_t: "int8", uint8_t: "uint8", int16_t: "int16", int32_t: "int32", float: "float32")

static void dmx_print_u64(const char *before, uint64_t v)
{
    /* Printed in two parts so no long-long printf support is needed. */
    if (v >= 1000000000u)
        printf("%s%" PRIu32 "%09" PRIu32, before, (uint32_t)(v / 1000000000u), (uint32_t)(v % 1000000000u));
    else
        printf("%s%" PRIu32, before, (uint32_t)v);
}

/* Ends a LAYER or TOTAL line: ticks, then instructions under QEMU -icount shift=5. */
static void dmx_print_count(uint64_t ticks)
{
    dmx_print_u64(" ", ticks);
    dmx_print_u64(" ", dmx_ticks_to_insn(ticks));
    printf("\n");
}

static void dmx_print_outputs(void)
{
    for (int i = 0; i < DMX_OUTPUT_SIZE; i++) {
        if (i % DMX_VALUES_PER_LINE == 0)
            printf(i ? "\nOUTPUT %d" : "OUTPUT %d", i);
        DMX_PRINT_VALUE(dmx_output[i]);
    }
    printf("\n");
}

/* Bit-exact: floats are compared by their bytes, so -0.0 != 0.0 and NaN == NaN. */
static int dmx_count_mismatches(void)
{
    int mismatches = 0;
    for (int i = 0; i < DMX_OUTPUT_SIZE; i++) {
        if (memcmp(&dmx_output[i], &dmx_expected_output[i], sizeof dmx_output[i]) == 0)
            continue;
        if (mismatches < DMX_MAX_MISMATCHES_SHOWN) {
            printf("MISMATCH %d got", i);
            DMX_PRINT_VALUE(dmx_output[i]);
            printf(" expected");
            DMX_PRINT_VALUE(dmx_expected_output[i]);
            printf("\n");
        }
        mismatches++;
    }
    return mismatches;
}

int main(void)
{
    printf("DMX cpu=%s layers=%d inputs=%d outputs=%d output_type=%s\n", DMX_FW_CPU, DMX_NUM_LAYERS,
           DMX_INPUT_SIZE, DMX_OUTPUT_SIZE, DMX_TYPE_NAME(dmx_output[0]));

    dmx_counter_start();
    dmx_prof_calibrate();
    uint64_t read_cost = dmx_counter_now();
    read_cost = dmx_counter_now() - read_cost;

    uint64_t start = dmx_counter_now();
    int rc = dmx_model_run(dmx_sample_input, dmx_output);
    uint64_t total = dmx_counter_now() - start - read_cost;
    uint64_t hooks = dmx_prof_hook_ticks();
    total = total > hooks ? total - hooks : 0;

    dmx_print_u64("COUNTER systick overhead=", dmx_prof_overhead());
    printf(" ticks_per_kinsn=%u\n", DMX_QEMU_TICKS_PER_KINSN);
    for (int i = 0; i < dmx_prof_num_layers(); i++) {
        const dmx_layer_count_t *layer = dmx_prof_layer(i);
        if (!layer->calls)
            continue;
        printf("LAYER %d %s", i, layer->name && *layer->name ? layer->name : "-");
        dmx_print_count(layer->ticks);
    }
    printf("TOTAL");
    dmx_print_count(total);
    dmx_print_outputs();

    if (rc != 0) {
        printf("FAIL dmx_model_run returned %d\n", rc);
        return 1;
    }
    if (dmx_prof_errors()) {
        printf("FAIL %" PRIu32 " layer hooks with a bad index or without DMX_LAYER_BEGIN\n", dmx_prof_errors());
        return 1;
    }
    int mismatches = dmx_count_mismatches();
    if (mismatches) {
        printf("FAIL %d of %d outputs differ from expected.h\n", mismatches, DMX_OUTPUT_SIZE);
        return 1;
    }
    printf("PASS\n");
    return 0;
}
