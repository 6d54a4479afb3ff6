/* SOFTMAX, int8 in and out (output scale 1/256, zero point -128): TFLite's
 * reference_ops::Softmax with gemmlowp's fixed-point exp and reciprocal.
 * Q formats: inputs to exp have 5 integer bits, the sum of exps 12. */
static int32_t ec_exp_quarter(int32_t a)
{
    /* exp(a) for a in [-1/4, 0), Q0.31; Taylor series around -1/8 */
    const int32_t exp_minus_eighth = 1895147668;
    const int32_t one_third = 715827883;
    const int32_t x = a + (1 << 28);
    const int32_t x2 = ec_high_mul(x, x);
    const int32_t x3 = ec_high_mul(x2, x);
    const int32_t x4 = ec_high_mul(x2, x2);
    const int32_t x4_over_4 = ec_div_pot(x4, 2);
    const int32_t poly = ec_div_pot(ec_high_mul(x4_over_4 + x3, one_third) + x2, 1);
    return exp_minus_eighth + ec_high_mul(exp_minus_eighth, x + poly);
}

static int32_t ec_exp_negative(int32_t a)
{
    /* exp(a) for a <= 0 given in Q5.26, result Q0.31 */
    static const int32_t barrel[7] = {1672461947, 1302514674, 790015084, 290630308,
                                      39332535, 720401, 242};
    const int32_t quarter = 1 << 24;
    const int32_t a_mod = (a & (quarter - 1)) - quarter;
    const int32_t remainder = a_mod - a;
    int32_t result = ec_exp_quarter(ec_sat_shl(a_mod, 5));
    int k;
    for (k = 0; k < 7; ++k) {
        if (remainder & (1 << (24 + k))) {
            result = ec_high_mul(result, barrel[k]);
        }
    }
    return a == 0 ? INT32_MAX : result;
}

static void ec_softmax(const int8_t *in, int8_t *out, int rows, int depth,
                       int32_t in_mult, int in_left_shift, int32_t diff_min)
{
    int r, c;
    for (r = 0; r < rows; ++r) {
        const int8_t *x = in + r * depth;
        int8_t *y = out + r * depth;
        int32_t max_in_row = -128;
        int32_t sum = 0;
        int32_t scale;
        int headroom, bits_over_unit;
        for (c = 0; c < depth; ++c) {
            max_in_row = x[c] > max_in_row ? x[c] : max_in_row;
        }
        for (c = 0; c < depth; ++c) {
            const int32_t diff = (int32_t)x[c] - max_in_row;
            if (diff >= diff_min) {
                const int32_t scaled = ec_high_mul(diff * (1 << in_left_shift), in_mult);
                sum += ec_div_pot(ec_exp_negative(scaled), 12);
            }
        }
        headroom = ec_leading_zeros((uint32_t)sum);
        bits_over_unit = 12 - headroom;
        scale = ec_one_over_one_plus_x((int32_t)(((uint32_t)sum << headroom) - (1u << 31)));
        for (c = 0; c < depth; ++c) {
            const int32_t diff = (int32_t)x[c] - max_in_row;
            if (diff >= diff_min) {
                const int32_t scaled = ec_high_mul(diff * (1 << in_left_shift), in_mult);
                const int32_t e = ec_exp_negative(scaled);
                const int32_t v = ec_div_pot(ec_high_mul(scale, e), bits_over_unit + 31 - 8) - 128;
                y[c] = ec_clamp8(v, -128, 127);
            } else {
                y[c] = -128;
            }
        }
    }
}
