/* PRELU, int8, alpha broadcast: TFLite's reference_ops::BroadcastPrelu4DSlow
 * (one multiplier for x >= 0, another for x * alpha). */
struct ec_prelu {
    struct ec_broadcast shape;
    int32_t x_offset, alpha_offset, out_offset;
    int32_t mult_pos, shift_pos, mult_neg, shift_neg;
};

static inline int8_t ec_prelu_one(const struct ec_prelu *p, int32_t u, int32_t v)
{
    const int32_t x = p->x_offset + u;
    const int32_t r = x >= 0 ? ec_requantize(x, p->mult_pos, p->shift_pos)
                             : ec_requantize(x * (p->alpha_offset + v), p->mult_neg, p->shift_neg);
    return ec_clamp8(r + p->out_offset, -128, 127);
}

static void ec_prelu(const struct ec_prelu *p, const int8_t *x, const int8_t *alpha, int8_t *out)
{
    EC_BROADCAST(&p->shape, x, alpha, out, ec_prelu_one(p, u, v));
}
