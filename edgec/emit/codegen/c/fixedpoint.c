/* Fixed-point helpers with TFLite's integer semantics (gemmlowp's
 * SaturatingRoundingDoublingHighMul and RoundingDivideByPOT, TFLite's
 * double-rounding MultiplyByQuantizedMultiplier). Signed right shifts are
 * arithmetic on every compiler edgec supports (gcc, clang, arm-none-eabi-gcc). */
static inline int32_t ec_high_mul(int32_t a, int32_t b)
{
    int64_t ab;
    int64_t nudge;
    if (a == b && a == INT32_MIN) {
        return INT32_MAX;
    }
    ab = (int64_t)a * (int64_t)b;
    nudge = ab >= 0 ? ((int64_t)1 << 30) : (1 - ((int64_t)1 << 30));
    return (int32_t)((ab + nudge) / ((int64_t)1 << 31));
}

/* gemmlowp's RoundingDivideByPOT. TFLite's kernels sometimes divide by 2^32 or more
 * (DIV of a dividend of +-1 by a large divisor; SOFTMAX over 512 or more near-equal
 * values), where its shift is undefined in C++ and TFLite-Micro's result depends on the
 * machine: a Cortex-M's shift by a register fills with the sign, giving
 * (x >> 31) + (x >= 0); x86-64 and AArch64 take the shift count modulo 32. The C
 * computes the Cortex-M's value on every compiler, or x86's where EC_SHIFT_COUNT_MOD_32
 * is defined (edgec's check against TFLite-Micro's host build defines it). */
static inline int32_t ec_div_pot(int32_t x, int exponent)
{
    if (exponent > 31) {
#ifdef EC_SHIFT_COUNT_MOD_32
        return (x >> (exponent & 31)) + (x >= 0);
#else
        return (x >> 31) + (x >= 0);
#endif
    }
    {
        const int32_t mask = (int32_t)(((int64_t)1 << exponent) - 1);
        const int32_t remainder = x & mask;
        const int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
        return (x >> exponent) + (remainder > threshold ? 1 : 0);
    }
}

/* TFLite's MultiplyByQuantizedMultiplier in fewer instructions, with the same result
 * for every input: for a multiplier that is not INT32_MIN (edgec's multipliers are
 * positive), ec_high_mul(a, m) is (a*m + 2^30) >> 31 whatever the sign (one SMLAL),
 * followed by ec_div_pot's rounding division in 32 bits. */
static inline int32_t ec_requantize(int32_t x, int32_t multiplier, int32_t shift)
{
    int32_t high;
    int32_t mask;
    if (shift > 0) {
        return (int32_t)(((int64_t)(x * (1 << shift)) * multiplier + ((int64_t)1 << 30)) >> 31);
    }
    high = (int32_t)(((int64_t)x * multiplier + ((int64_t)1 << 30)) >> 31);
    mask = (int32_t)((1u << -shift) - 1u);
    return (high >> -shift) + ((high & mask) > (mask >> 1) + (high < 0));
}

static inline int32_t ec_sat_shl(int32_t x, int exponent)
{
    const int32_t threshold = (int32_t)((1u << (31 - exponent)) - 1u);
    if (x > threshold) {
        return INT32_MAX;
    }
    if (x < -threshold) {
        return INT32_MIN;
    }
    return x * (1 << exponent);
}


static inline int32_t ec_one_over_one_plus_x(int32_t a)
{
    /* 1 / (1 + a) for a in [0, 1), Q0.31 in and out; Newton-Raphson in Q2.29 */
    const int64_t sum = (int64_t)a + INT32_MAX;
    const int32_t half_denominator = (int32_t)((sum + (sum >= 0 ? 1 : -1)) / 2);
    int32_t x = 1515870810 + ec_high_mul(half_denominator, -1010580540);
    int i;
    for (i = 0; i < 3; ++i) {
        const int32_t one_minus = (1 << 29) - ec_high_mul(half_denominator, x);
        x = x + ec_sat_shl(ec_high_mul(x, one_minus), 2);
    }
    return ec_sat_shl(x, 1);
}


static inline int ec_leading_zeros(uint32_t x)
{
    int n = 0;
    if (x == 0) {
        return 32;
    }
    while (!(x & 0x80000000u)) {
        x <<= 1;
        ++n;
    }
    return n;
}


/* TFLite's CountLeadingSignBits for int32 (31 for 0 and -1) */
static inline int ec_leading_sign_bits(int32_t x)
{
    return ec_leading_zeros((uint32_t)(x ^ (x >> 31))) - 1;
}
