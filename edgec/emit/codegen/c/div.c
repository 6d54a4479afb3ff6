/* DIV, int8, with broadcasting: TFLite's reference_ops::Div for int8 (the
 * divisor's reciprocal by gemmlowp's Newton-Raphson, the dividend scaled to
 * full headroom, then one requantization). A zero divisor is undefined in
 * TFLite as well. */
struct ec_div {
    struct ec_broadcast shape;
    int32_t a_offset, b_offset, out_offset;
    int32_t mult, shift;
    int32_t act_min, act_max;
};

static inline int8_t ec_div_one(const struct ec_div *p, int32_t a, int32_t b)
{
    int32_t u = p->a_offset + a;
    int32_t v = p->b_offset + b;
    int headroom_plus_one, recip_shift, headroom;
    int32_t inverse, quotient;
    if (v < 0) {
        u = -u;
        v = -v;
    }
    headroom_plus_one = ec_leading_zeros((uint32_t)v);
    recip_shift = 31 - headroom_plus_one;
    inverse = ec_one_over_one_plus_x((int32_t)(((uint32_t)v << headroom_plus_one) - (1u << 31)));
    headroom = ec_leading_sign_bits(u);
    quotient = ec_high_mul((int32_t)((uint32_t)u << headroom), inverse);
    quotient = ec_div_pot(ec_high_mul(quotient, p->mult), -(p->shift - recip_shift - headroom));
    return ec_clamp8(quotient + p->out_offset, p->act_min, p->act_max);
}

static void ec_div(const struct ec_div *p, const int8_t *a, const int8_t *b, int8_t *out)
{
    EC_BROADCAST(&p->shape, a, b, out, ec_div_one(p, u, v));
}
