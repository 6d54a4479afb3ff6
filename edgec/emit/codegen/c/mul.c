/* MUL, int8, with broadcasting over up to four dimensions (a stride of 0
 * repeats an input): TFLite's reference_integer_ops::Mul / BroadcastMul6DSlow. */
struct ec_mul {
    int dims[4];
    int a_strides[4];
    int b_strides[4];
    int32_t a_offset, b_offset, out_offset;
    int32_t mult, shift;
    int32_t act_min, act_max;
};

static void ec_mul(const struct ec_mul *p, const int8_t *a, const int8_t *b, int8_t *out)
{
    int i0, i1, i2, i3;
    for (i0 = 0; i0 < p->dims[0]; ++i0) {
        for (i1 = 0; i1 < p->dims[1]; ++i1) {
            for (i2 = 0; i2 < p->dims[2]; ++i2) {
                const int8_t *x = a + i0 * p->a_strides[0] + i1 * p->a_strides[1] + i2 * p->a_strides[2];
                const int8_t *y = b + i0 * p->b_strides[0] + i1 * p->b_strides[1] + i2 * p->b_strides[2];
                for (i3 = 0; i3 < p->dims[3]; ++i3) {
                    const int32_t product = (p->a_offset + x[i3 * p->a_strides[3]]) * (p->b_offset + y[i3 * p->b_strides[3]]);
                    *out++ = ec_clamp8(ec_requantize(product, p->mult, p->shift) + p->out_offset, p->act_min, p->act_max);
                }
            }
        }
    }
}
