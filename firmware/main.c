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
 *   EE <vector> exit=<k> expected=<k> run=<instructions> ee=<instructions>
 *   EE_AVERAGE vectors=<n> run=<instructions> ee=<instructions> exits=<count of exit 0>,...,<final>
 *                                     (early-exit exports only, built with -DDMX_FW_EARLY_EXIT:
 *                                      both entry points on every stored test vector)
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

#ifndef DMX_NUM_INPUTS
/* One input and one output: model.h's original API. */
static dmx_output_t dmx_output[DMX_OUTPUT_SIZE];
#define DMX_OUT_VALUES DMX_OUTPUT_SIZE
#define DMX_OUT_IS_FLOAT(i) DMX_OUTPUT_IS_FLOAT
#define DMX_IN_VALUES DMX_INPUT_SIZE
static int dmx_run(void) { return dmx_model_run(dmx_sample_input, dmx_output); }
static const char *dmx_output_type(void) { return DMX_TYPE_NAME(dmx_output[0]); }
#define DMX_OUT_BYTES(i) ((const unsigned char *)&dmx_output[i])
#define DMX_EXP_BYTES(i) ((const unsigned char *)&dmx_expected_output[i])
#define DMX_OUT_SIZEOF(i) sizeof dmx_output[0]
#define DMX_PRINT_OUT(i) DMX_PRINT_VALUE(dmx_output[i])
#define DMX_PRINT_EXP(i) DMX_PRINT_VALUE(dmx_expected_output[i])
#else
/* Several inputs or outputs: model.h lists them (dmx_input_info, dmx_output_info), input.h and
 * expected.h hold one array per tensor, dmx_model_run_all takes pointer arrays. The outputs sit
 * in one word-aligned buffer, tensor after tensor, and are printed and compared in graph order
 * as one run of values. */
static int32_t dmx_output_words[DMX_OUTPUT_WORDS];
static int dmx_out_values(void)
{
    int n = 0;
    for (int k = 0; k < DMX_NUM_OUTPUTS; k++)
        n += dmx_output_info[k].size;
    return n;
}
static int dmx_in_values(void)
{
    int n = 0;
    for (int k = 0; k < DMX_NUM_INPUTS; k++)
        n += dmx_input_info[k].size;
    return n;
}
#define DMX_OUT_VALUES dmx_out_values()
#define DMX_IN_VALUES dmx_in_values()
/* Value i of the run: which output, and its byte offset in that output's buffer. */
static int dmx_locate(int i, int *offset)
{
    int k = 0;
    while (i >= dmx_output_info[k].size) {
        i -= dmx_output_info[k].size;
        k++;
    }
    *offset = i * dmx_output_info[k].elem_bytes;
    return k;
}
static unsigned char *dmx_out_base(int k)
{
    size_t at = 0;
    for (int j = 0; j < k; j++)
        at += ((size_t)dmx_output_info[j].size * (size_t)dmx_output_info[j].elem_bytes + 3u) / 4u;
    return (unsigned char *)(dmx_output_words + at);
}
static int dmx_run(void)
{
    void *out[DMX_NUM_OUTPUTS];
    for (int k = 0; k < DMX_NUM_OUTPUTS; k++)
        out[k] = dmx_out_base(k);
    return dmx_model_run_all(dmx_sample_inputs, out);
}
static const char *dmx_output_type(void)
{
    int widest = 1;
    for (int k = 0; k < DMX_NUM_OUTPUTS; k++) {
        if (dmx_output_info[k].is_float)
            return "float32"; /* integer values print as whole numbers, which read as floats too */
        widest = dmx_output_info[k].elem_bytes > widest ? dmx_output_info[k].elem_bytes : widest;
    }
    return widest == 2 ? "int16" : "int8"; /* int8 values read as int16 too */
}
static const unsigned char *dmx_value_bytes(int i, int expected)
{
    int offset;
    const int k = dmx_locate(i, &offset);
    return (expected ? (const unsigned char *)dmx_expected_outputs[k] : dmx_out_base(k)) + offset;
}
static void dmx_print_at(int i, int expected)
{
    int offset;
    const int k = dmx_locate(i, &offset);
    const unsigned char *p = dmx_value_bytes(i, expected);
    (void)offset;
    if (dmx_output_info[k].is_float) {
        float v;
        memcpy(&v, p, sizeof v);
        DMX_PRINT_VALUE(v);
    } else if (dmx_output_info[k].elem_bytes == 2) {
        int16_t v;
        memcpy(&v, p, sizeof v);
        DMX_PRINT_VALUE(v);
    } else {
        int8_t v;
        memcpy(&v, p, sizeof v);
        DMX_PRINT_VALUE(v);
    }
}
#define DMX_OUT_BYTES(i) dmx_value_bytes((i), 0)
#define DMX_EXP_BYTES(i) dmx_value_bytes((i), 1)
#define DMX_OUT_SIZEOF(i) ((size_t)dmx_output_info[dmx_locate((i), &(int){0})].elem_bytes)
#define DMX_PRINT_OUT(i) dmx_print_at((i), 0)
#define DMX_PRINT_EXP(i) dmx_print_at((i), 1)
#endif

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

#ifdef DMX_FW_EARLY_EXIT
#include "model_ee.h"
#include "vectors_ee.h"

static dmx_output_t dmx_ee_out[DMX_OUTPUT_SIZE];

/* Ticks of one call, the counter read and the layer hooks it ran taken out. */
static uint64_t dmx_ee_net(uint64_t ticks, uint64_t read_cost, uint64_t hooks)
{
    ticks = ticks > read_cost ? ticks - read_cost : 0;
    return ticks > hooks ? ticks - hooks : 0;
}

/* dmx_model_run and dmx_model_run_ee on every stored vector, each compared to the bit with the
 * reference's answers (vectors_ee.h); returns the number of vectors that differ. */
static int dmx_run_ee_vectors(uint64_t read_cost)
{
    uint64_t sum_run = 0, sum_ee = 0;
    int counts[DMX_EE_NUM_EXITS + 1] = {0};
    int bad = 0;
    for (int v = 0; v < DMX_EE_NUM_VECTORS; v++) {
        uint64_t hooks = dmx_prof_hook_ticks();
        uint64_t start = dmx_counter_now();
        int rc = dmx_model_run(dmx_ee_vector_inputs[v], dmx_ee_out);
        const uint64_t run = dmx_ee_net(dmx_counter_now() - start, read_cost, dmx_prof_hook_ticks() - hooks);
        const int run_ok = rc == 0 && memcmp(dmx_ee_out, dmx_ee_vector_outputs[v], sizeof dmx_ee_out) == 0;
        int taken = -1;
        start = dmx_counter_now();
        rc = dmx_model_run_ee(dmx_ee_vector_inputs[v], dmx_ee_out, &taken);
        const uint64_t ee = dmx_ee_net(dmx_counter_now() - start, read_cost, 0);
        const int ee_ok = rc == 0 && taken == dmx_ee_vector_exits[v] &&
                          memcmp(dmx_ee_out, dmx_ee_vector_ee_outputs[v], sizeof dmx_ee_out) == 0;
        printf("EE %d exit=%d expected=%d", v, taken, dmx_ee_vector_exits[v]);
        dmx_print_u64(" run=", dmx_ticks_to_insn(run));
        dmx_print_u64(" ee=", dmx_ticks_to_insn(ee));
        printf("%s%s\n", run_ok ? "" : " run_differs", ee_ok ? "" : " ee_differs");
        if (taken >= 0 && taken <= DMX_EE_NUM_EXITS)
            counts[taken]++;
        bad += !(run_ok && ee_ok);
        sum_run += run;
        sum_ee += ee;
    }
    printf("EE_AVERAGE vectors=%d", DMX_EE_NUM_VECTORS);
    dmx_print_u64(" run=", dmx_ticks_to_insn(sum_run / DMX_EE_NUM_VECTORS));
    dmx_print_u64(" ee=", dmx_ticks_to_insn(sum_ee / DMX_EE_NUM_VECTORS));
    printf(" exits=");
    for (int k = 0; k <= DMX_EE_NUM_EXITS; k++)
        printf(k ? ",%d" : "%d", counts[k]);
    printf("\n");
    return bad;
}
#endif

static void dmx_print_outputs(void)
{
    for (int i = 0; i < DMX_OUT_VALUES; i++) {
        if (i % DMX_VALUES_PER_LINE == 0)
            printf(i ? "\nOUTPUT %d" : "OUTPUT %d", i);
        DMX_PRINT_OUT(i);
    }
    printf("\n");
}

/* Bit-exact: floats are compared by their bytes, so -0.0 != 0.0 and NaN == NaN. */
static int dmx_count_mismatches(void)
{
    int mismatches = 0;
    for (int i = 0; i < DMX_OUT_VALUES; i++) {
        if (memcmp(DMX_OUT_BYTES(i), DMX_EXP_BYTES(i), DMX_OUT_SIZEOF(i)) == 0)
            continue;
        if (mismatches < DMX_MAX_MISMATCHES_SHOWN) {
            printf("MISMATCH %d got", i);
            DMX_PRINT_OUT(i);
            printf(" expected");
            DMX_PRINT_EXP(i);
            printf("\n");
        }
        mismatches++;
    }
    return mismatches;
}

int main(void)
{
    printf("DMX cpu=%s layers=%d inputs=%d outputs=%d output_type=%s\n", DMX_FW_CPU, DMX_NUM_LAYERS,
           DMX_IN_VALUES, DMX_OUT_VALUES, dmx_output_type());

    dmx_counter_start();
    dmx_prof_calibrate();
    uint64_t read_cost = dmx_counter_now();
    read_cost = dmx_counter_now() - read_cost;

    uint64_t start = dmx_counter_now();
    int rc = dmx_run();
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
        printf("FAIL %d of %d outputs differ from expected.h\n", mismatches, DMX_OUT_VALUES);
        return 1;
    }
#ifdef DMX_FW_EARLY_EXIT
    const int ee_bad = dmx_run_ee_vectors(read_cost);
    if (ee_bad) {
        printf("FAIL %d of %d test vectors differ from the reference (dmx_model_run or dmx_model_run_ee)\n", ee_bad,
               DMX_EE_NUM_VECTORS);
        return 1;
    }
#endif
    printf("PASS\n");
    return 0;
}
