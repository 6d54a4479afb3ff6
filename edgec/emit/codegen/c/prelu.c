/* PRELU, int8, alpha broadcast over up to four dimensions: TFLite's
 * reference_ops::BroadcastPrelu4DSlow (one multiplier for x >= 0, another for
 * x * alpha). */
struct ec_prelu {
    int dims[4];
    int x_strides[4];
    int alpha_strides[4];
    int32_t x_offset, alpha_offset, out_offset;
    int32_t mult_pos, shift_pos, mult_neg, shift_neg;
};

static void ec_prelu(const struct ec_prelu *p, const int8_t *x, const int8_t *alpha, int8_t *out)
{
    int i0, i1, i2, i3;
    for (i0 = 0; i0 < p->dims[0]; ++i0) {
        for (i1 = 0; i1 < p->dims[1]; ++i1) {
            for (i2 = 0; i2 < p->dims[2]; ++i2) {
                const int8_t *a = x + i0 * p->x_strides[0] + i1 * p->x_strides[1] + i2 * p->x_strides[2];
                const int8_t *w = alpha + i0 * p->alpha_strides[0] + i1 * p->alpha_strides[1] + i2 * p->alpha_strides[2];
                for (i3 = 0; i3 < p->dims[3]; ++i3) {
                    const int32_t v = p->x_offset + a[i3 * p->x_strides[3]];
                    const int32_t r = v >= 0 ? ec_requantize(v, p->mult_pos, p->shift_pos)
                                             : ec_requantize(v * (p->alpha_offset + w[i3 * p->alpha_strides[3]]),
                                                             p->mult_neg, p->shift_neg);
                    *out++ = ec_clamp8(r + p->out_offset, -128, 127);
                }
            }
        }
    }
}
