/* SOFTMAX and LOG_SOFTMAX over the last dimension, int8 in and out: TFLite's
 * reference_ops::Softmax (output scale 1/256, zero point -128) and
 * LogSoftmaxQuantized (output scale 16/256, zero point 127), with gemmlowp's
 * fixed-point exp, reciprocal and log. Q formats: the scaled differences from
 * the row's maximum have 5 integer bits, the sum of exps 12, the log 5.
 * One file holds both kernels (they share the exp); a model may use either. */
struct ec_softmax {
    int rows, depth;
    int32_t input_multiplier;      /* beta * input scale in Q5.26, a left shift and a Q0.31 multiplier */
    int32_t input_left_shift;
    int32_t diff_min;              /* differences below it contribute nothing */
    int32_t reverse_multiplier;    /* LOG_SOFTMAX: the inverse of the input scaling, multiplier and shift */
    int32_t reverse_shift;
};

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

/* A difference from the row's maximum (<= 0) as Q5.26 */
static int32_t ec_softmax_scaled(const struct ec_softmax *p, int32_t diff)
{
    return ec_high_mul(diff * (1 << p->input_left_shift), p->input_multiplier);
}

static int32_t ec_row_max(const int8_t *x, int depth)
{
    int32_t m = -128;
    int c;
    for (c = 0; c < depth; ++c) {
        m = x[c] > m ? x[c] : m;
    }
    return m;
}

/* The sum of exp(scaled difference) over a row, Q12.19 */
static int32_t ec_sum_of_exps(const struct ec_softmax *p, const int8_t *x, int32_t max_in_row)
{
    int32_t sum = 0;
    int c;
    for (c = 0; c < p->depth; ++c) {
        const int32_t diff = (int32_t)x[c] - max_in_row;
        if (diff >= p->diff_min) {
            sum += ec_div_pot(ec_exp_negative(ec_softmax_scaled(p, diff)), 12);
        }
    }
    return sum;
}

EC_HELPER void ec_softmax(const struct ec_softmax *p, const int8_t *in, int8_t *out)
{
    int r, c;
    for (r = 0; r < p->rows; ++r) {
        const int8_t *x = in + r * p->depth;
        int8_t *y = out + r * p->depth;
        const int32_t max_in_row = ec_row_max(x, p->depth);
        const int32_t sum = ec_sum_of_exps(p, x, max_in_row);
        const int headroom = ec_leading_zeros((uint32_t)sum);
        const int bits_over_unit = 12 - headroom;
        const int32_t scale = ec_one_over_one_plus_x((int32_t)(((uint32_t)sum << headroom) - (1u << 31)));
        for (c = 0; c < p->depth; ++c) {
            const int32_t diff = (int32_t)x[c] - max_in_row;
            if (diff >= p->diff_min) {
                const int32_t e = ec_exp_negative(ec_softmax_scaled(p, diff));
                const int32_t v = ec_div_pot(ec_high_mul(scale, e), bits_over_unit + 31 - 8) - 128;
                y[c] = ec_clamp8(v, -128, 127);
            } else {
                y[c] = -128;
            }
        }
    }
}

EC_HELPER int32_t ec_sat_add32(int32_t a, int32_t b)
{
    const int64_t s = (int64_t)a + b;
    return s > INT32_MAX ? INT32_MAX : s < INT32_MIN ? INT32_MIN : (int32_t)s;
}

/* gemmlowp's RoundingHalfSum */
EC_HELPER int32_t ec_half_sum(int32_t a, int32_t b)
{
    const int64_t s = (int64_t)a + b;
    return (int32_t)((s + (s >= 0 ? 1 : -1)) / 2);
}

/* log(x) for x >= 1, x in Q12.19, result Q5.26: TFLite's
 * log_x_for_x_greater_than_or_equal_to_1. x = 2^z * r with r in [sqrt(1/2), 1)
 * (chosen from two candidate splits), log r from a rational approximation around
 * 2^-1/4; the sum is accumulated in Q6.25 and saturated into Q5.26. */
EC_HELPER int32_t ec_log_x_ge_1(int32_t x)
{
    const int32_t log_2 = 1488522236;
    const int32_t sqrt_sqrt_half = 1805811301;
    const int32_t sqrt_half = 1518500250;
    const int32_t alpha_n = 117049297;
    const int32_t alpha_d = 127690142;
    const int32_t alpha_i = 1057819769;
    const int32_t alpha_f = 638450708;
    const int32_t quarter_q6 = 1 << 23;            /* 1/4 in Q6.25 */
    const int input_bits = 12;
    const int a_headroom_plus_1 = ec_leading_zeros((uint32_t)x);
    const int32_t r_a = ec_sat_shl(ec_high_mul(ec_sat_shl(x, a_headroom_plus_1 - 1), sqrt_half), 1);
    const int32_t pow_a = ec_sat_add32(ec_sat_shl(input_bits - a_headroom_plus_1, 25), quarter_q6);
    const int b_headroom = ec_leading_zeros((uint32_t)ec_high_mul(x, sqrt_half)) - 1;
    const int32_t r_b = ec_sat_shl(x, b_headroom);
    const int32_t pow_b = ec_sat_add32(ec_sat_shl(input_bits - b_headroom, 25), -quarter_q6);
    const int32_t r = r_a < r_b ? r_a : r_b;
    const int32_t pow2 = pow_a > pow_b ? pow_a : pow_b;
    const int32_t p = ec_half_sum(r, sqrt_sqrt_half);
    const int32_t q = 2 * (r - sqrt_sqrt_half);
    const int32_t q_sq = ec_high_mul(q, q);
    const int32_t num = ec_high_mul(q, r) + ec_high_mul(ec_high_mul(q, q_sq), alpha_n);
    const int32_t denom_minus_one = ec_high_mul(p, alpha_i + q + ec_high_mul(alpha_d, q_sq)) +
                                    ec_high_mul(alpha_f, q);
    const int32_t recip = ec_one_over_one_plus_x(denom_minus_one);
    return ec_sat_shl(ec_high_mul(pow2, log_2) + ec_high_mul(ec_div_pot(num, 6), recip), 1);
}

EC_HELPER void ec_log_softmax(const struct ec_softmax *p, const int8_t *in, int8_t *out)
{
    int r, c;
    for (r = 0; r < p->rows; ++r) {
        const int8_t *x = in + r * p->depth;
        int8_t *y = out + r * p->depth;
        const int32_t max_in_row = ec_row_max(x, p->depth);
        const int32_t log_sum = ec_log_x_ge_1(ec_sum_of_exps(p, x, max_in_row));
        /* differences whose output saturates at -128 (note > below, not >=) */
        const int32_t reach = ec_requantize(log_sum + INT32_MIN, p->reverse_multiplier, p->reverse_shift);
        const int32_t diff_min = p->diff_min - 1 > reach ? p->diff_min - 1 : reach;
        for (c = 0; c < p->depth; ++c) {
            const int32_t diff = (int32_t)x[c] - max_in_row;
            if (diff > diff_min) {
                const int32_t v = ec_div_pot(ec_softmax_scaled(p, diff) - log_sum, 31 - 5 - 4) + 127;
                y[c] = ec_clamp8(v, -128, 127);
            } else {
                y[c] = -128;
            }
        }
    }
}
