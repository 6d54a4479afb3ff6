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

static inline int32_t ec_div_pot(int32_t x, int exponent)
{
    const int32_t mask = (int32_t)(((int64_t)1 << exponent) - 1);
    const int32_t remainder = x & mask;
    const int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
    return (x >> exponent) + (remainder > threshold ? 1 : 0);
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
