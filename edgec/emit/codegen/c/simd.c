/* Packed 16-bit arithmetic. On cores with the DSP extension (Cortex-M4, M7, M33
 * with DSP, M55) these are single instructions from the compiler's arm_acle.h;
 * elsewhere (the host, Cortex-M0+) portable C that computes the same values, so
 * the host build checks the very code the microcontroller runs. Words hold four
 * int8 values in memory order (both targets are little-endian). */
#if defined(__ARM_FEATURE_DSP) && defined(__ARM_FEATURE_SIMD32)
#include <arm_acle.h>
/* int8 lanes 0 and 2 sign-extended into two int16 halves */
static inline int32_t ec_sxtb16(uint32_t x)
{
    return __sxtb16((int32_t)x);
}
/* int8 lanes 1 and 3 sign-extended into two int16 halves */
static inline int32_t ec_sxtb16_ror8(uint32_t x)
{
    int32_t r;
    __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(x));
    return r;
}
/* acc + low(a)*low(b) + high(a)*high(b) */
static inline int32_t ec_smlad(int32_t a, int32_t b, int32_t acc)
{
    return __smlad(a, b, acc);
}
static inline int32_t ec_smlabb(int32_t a, int32_t b, int32_t acc)
{
    return __smlabb(a, b, acc);
}
static inline int32_t ec_smlatt(int32_t a, int32_t b, int32_t acc)
{
    return __smlatt(a, b, acc);
}
/* two int16 additions, wrapping */
static inline int32_t ec_sadd16(int32_t a, int32_t b)
{
    return __sadd16(a, b);
}
#else
static inline int32_t ec_lo16(int32_t x)
{
    return (int16_t)(uint16_t)((uint32_t)x & 0xFFFFu);
}
static inline int32_t ec_hi16(int32_t x)
{
    return (int16_t)(uint16_t)((uint32_t)x >> 16);
}
static inline int32_t ec_pack16(int32_t lo, int32_t hi)
{
    return (int32_t)(((uint32_t)lo & 0xFFFFu) | ((uint32_t)hi << 16));
}
static inline int32_t ec_sxtb16(uint32_t x)
{
    return ec_pack16((int8_t)(uint8_t)(x & 0xFFu), (int8_t)(uint8_t)((x >> 16) & 0xFFu));
}
static inline int32_t ec_sxtb16_ror8(uint32_t x)
{
    return ec_pack16((int8_t)(uint8_t)((x >> 8) & 0xFFu), (int8_t)(uint8_t)(x >> 24));
}
static inline int32_t ec_smlad(int32_t a, int32_t b, int32_t acc)
{
    return (int32_t)((uint32_t)acc + (uint32_t)(ec_lo16(a) * ec_lo16(b)) + (uint32_t)(ec_hi16(a) * ec_hi16(b)));
}
static inline int32_t ec_smlabb(int32_t a, int32_t b, int32_t acc)
{
    return (int32_t)((uint32_t)acc + (uint32_t)(ec_lo16(a) * ec_lo16(b)));
}
static inline int32_t ec_smlatt(int32_t a, int32_t b, int32_t acc)
{
    return (int32_t)((uint32_t)acc + (uint32_t)(ec_hi16(a) * ec_hi16(b)));
}
static inline int32_t ec_sadd16(int32_t a, int32_t b)
{
    return ec_pack16(ec_lo16(a) + ec_lo16(b), ec_hi16(a) + ec_hi16(b));
}
#endif

/* EC_SPECIALIZED: a kernel compiled once per op that calls it; its parameters are a static
 * const struct, so the compiler folds them (loop bounds, strides) into each op's own copy.
 * EC_SHARED: one compiled copy, whichever ops call it (and no warning if none does).
 * EC_HELPER: a helper the compiler inlines or not as it sees fit, unused by some kernels. */
#if defined(__GNUC__)
#define EC_SPECIALIZED static inline __attribute__((always_inline))
#define EC_SHARED static __attribute__((unused, noinline))
#define EC_HELPER static __attribute__((unused))
#else
#define EC_SPECIALIZED static inline
#define EC_SHARED static
#define EC_HELPER static
#endif

/* four bytes from any address (one unaligned LDR on Cortex-M3 and up) */
static inline uint32_t ec_load4(const int8_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

/* n bytes, a word at a time (newlib-nano's memcpy goes byte by byte) */
EC_HELPER void ec_copy_bytes(int8_t *dst, const int8_t *src, int n)
{
    for (; n >= 4; n -= 4, dst += 4, src += 4) {
        const uint32_t v = ec_load4(src);
        memcpy(dst, &v, 4);
    }
    for (; n > 0; --n) {
        *dst++ = *src++;
    }
}

EC_HELPER void ec_fill_bytes(int8_t *dst, int8_t value, int n)
{
    for (; n > 0; --n) {
        *dst++ = value;
    }
}
