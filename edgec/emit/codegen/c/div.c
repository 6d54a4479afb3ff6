/* DIV, int8, with broadcasting: TFLite's reference_ops::Div for int8 (the
 * divisor's reciprocal by gemmlowp's Newton-Raphson, the dividend scaled to
 * full headroom, then one requantization). A zero divisor is undefined in
 * TFLite as well. */
struct ec_div {
    int dims[4];
    int a_strides[4];
    int b_strides[4];
    int32_t a_offset, b_offset, out_offset;
    int32_t mult, shift;
    int32_t act_min, act_max;
};

static void ec_div(const struct ec_div *p, const int8_t *a, const int8_t *b, int8_t *out)
{
    int i0, i1, i2, i3;
    for (i0 = 0; i0 < p->dims[0]; ++i0) {
        for (i1 = 0; i1 < p->dims[1]; ++i1) {
            for (i2 = 0; i2 < p->dims[2]; ++i2) {
                const int8_t *x = a + i0 * p->a_strides[0] + i1 * p->a_strides[1] + i2 * p->a_strides[2];
                const int8_t *y = b + i0 * p->b_strides[0] + i1 * p->b_strides[1] + i2 * p->b_strides[2];
                for (i3 = 0; i3 < p->dims[3]; ++i3) {
                    int32_t u = p->a_offset + x[i3 * p->a_strides[3]];
                    int32_t v = p->b_offset + y[i3 * p->b_strides[3]];
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
                    *out++ = ec_clamp8(quotient + p->out_offset, p->act_min, p->act_max);
                }
            }
        }
    }
}
