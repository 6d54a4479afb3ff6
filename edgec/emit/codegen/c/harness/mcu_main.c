/* Bare-metal harness for generated code on QEMU's mps2-an386 (Cortex-M4F).
 * Runs every embedded input, prints outputs, timer ticks per inference, the
 * stack used by the inference and a calibration of ticks against a loop of
 * known length, through semihosting; then exits QEMU. Built by edgec. */
#include <stdint.h>

#include MODEL_HEADER

extern const int8_t h_inputs[][INPUT_SIZE];
extern const int h_count;

#define TIMER_CTRL (*(volatile uint32_t *)0x40000000u)
#define TIMER_VALUE (*(volatile uint32_t *)0x40000004u)
#define TIMER_RELOAD (*(volatile uint32_t *)0x40000008u)
#define STACK_PAINT 0x5A5A5A5Au
#define PAINT_WORDS 16384

static int h_semihost(int op, const void *arg)
{
    register int r0 __asm__("r0") = op;
    register const void *r1 __asm__("r1") = arg;
    __asm__ volatile("bkpt 0xab" : "+r"(r0) : "r"(r1) : "memory");
    return r0;
}

#ifndef PER_OP
#define PER_OP 1
#else
/* with -include the profiling header, the model records the timer after each op */
volatile uint32_t h_op_ticks[PER_OP];
#endif

/* the longest line: a tag, then " %08x" per word of output, per op, or of the 2 calibration words */
#define H_WORDS ((OUTPUT_SIZE + 3) / 4 > PER_OP ? (OUTPUT_SIZE + 3) / 4 : PER_OP)
static char h_line[1 + 9 * (H_WORDS > 2 ? H_WORDS : 2) + 2];

static char *h_put_hex(char *p, uint32_t v, int digits)
{
    static const char hex[] = "0123456789abcdef";
    int k;
    for (k = digits - 1; k >= 0; --k) {
        *p++ = hex[(v >> (4 * k)) & 0xFu];
    }
    return p;
}

static void h_print(char tag, const uint32_t *values, int n)
{
    char *p = h_line;
    int k;
    *p++ = tag;
    for (k = 0; k < n; ++k) {
        *p++ = ' ';
        p = h_put_hex(p, values[k], 8);
    }
    *p++ = '\n';
    *p = 0;
    h_semihost(0x04, h_line);
}

static void __attribute__((noinline)) h_loop(uint32_t n)
{
    /* exactly two instructions per iteration */
    __asm__ volatile("1: subs %0, %0, #1\n\tbne 1b" : "+r"(n) : : "cc");
}

static uint32_t h_ticks(void)
{
    return TIMER_VALUE;
}

static void __attribute__((noinline)) h_paint(void)
{
    volatile uint32_t probe[PAINT_WORDS];
    int k;
    for (k = 0; k < PAINT_WORDS; ++k) {
        probe[k] = STACK_PAINT;
    }
    (void)probe[0];
}

static uint32_t __attribute__((noinline)) h_stack_used(uintptr_t top)
{
    /* the painted region is the PAINT_WORDS words just below h_paint's caller */
    const uint32_t *p = (const uint32_t *)(top - 4u * PAINT_WORDS);
    while ((uintptr_t)p < top && *p == STACK_PAINT) {
        ++p;
    }
    return (uint32_t)(top - (uintptr_t)p);
}

int main(void)
{
    static int8_t out[OUTPUT_SIZE];
    uint32_t words[H_WORDS];
    uint32_t values[3];
    uint32_t t0, t1;
    uintptr_t top;
    int i, k;

    TIMER_RELOAD = 0xFFFFFFFFu;
    TIMER_VALUE = 0xFFFFFFFFu;
    TIMER_CTRL = 1u;

    t0 = h_ticks();
    h_loop(1000000u);
    t1 = h_ticks();
    values[0] = t0 - t1;
    values[1] = 2000000u;
    h_print('C', values, 2);

    for (i = 0; i < h_count; ++i) {
        __asm__ volatile("mov %0, sp" : "=r"(top));
        h_paint();
        t0 = h_ticks();
        INFER(h_inputs[i], out);
        t1 = h_ticks();
        values[0] = t0 - t1;
        values[1] = h_stack_used(top);
        h_print('T', values, 2);
#ifdef EC_PROFILE
        for (k = 0; k < PER_OP; ++k) {
            words[k] = (k == 0 ? t0 : h_op_ticks[k - 1]) - h_op_ticks[k];
        }
        h_print('P', words, PER_OP);
#endif
        for (k = 0; k < (OUTPUT_SIZE + 3) / 4; ++k) {
            words[k] = 0;
        }
        for (k = 0; k < OUTPUT_SIZE; ++k) {
            words[k / 4] |= (uint32_t)(uint8_t)out[k] << (8 * (3 - k % 4));
        }
        h_print('O', words, (OUTPUT_SIZE + 3) / 4);
    }
    return 0;
}

/* --- startup ----------------------------------------------------------- */
extern uint32_t __data_load, __data_start, __data_end, __bss_start, __bss_end, __stack_top;

static void h_exit(int ok)
{
    h_semihost(0x18, (const void *)(uintptr_t)(ok ? 0x20026u : 0x20023u));
    for (;;) {
    }
}

void h_reset(void)
{
    uint32_t *src = &__data_load;
    uint32_t *dst;
    /* enable the FPU (CP10, CP11 full access) before any floating-point code */
    *(volatile uint32_t *)0xE000ED88u |= 0xFu << 20;
    __asm__ volatile("dsb\n\tisb");
    for (dst = &__data_start; dst < &__data_end;) {
        *dst++ = *src++;
    }
    for (dst = &__bss_start; dst < &__bss_end;) {
        *dst++ = 0;
    }
    h_exit(main() == 0);
}

static void h_fault(void)
{
    h_semihost(0x04, "F fault\n");
    h_exit(0);
}

__attribute__((section(".vectors"), used)) void (*const h_vectors[16])(void) = {
    (void (*)(void))&__stack_top, h_reset, h_fault, h_fault, h_fault, h_fault, h_fault,
    0, 0, 0, 0, h_fault, h_fault, 0, h_fault, h_fault,
};
