/* ADD and SUB, int8, with broadcasting over up to four dimensions (a stride of
 * 0 repeats an input): TFLite's reference_integer_ops::Add / BroadcastAdd and
 * reference_ops::Sub for int8; both inputs rescaled to twice the larger scale
 * after a left shift of 20, then the sum (or difference) requantized. */
struct ec_add {
    int dims[4];
    int a_strides[4];
    int b_strides[4];
    int32_t a_offset, a_mult, a_shift;
    int32_t b_offset, b_mult, b_shift;
    int left_shift;
    int subtract;
    int32_t out_mult, out_shift, out_offset;
    int32_t act_min, act_max;
};

EC_SPECIALIZED void ec_add(const struct ec_add *p, const int8_t *a, const int8_t *b, int8_t *out)
{
    int i0, i1, i2, i3;
    for (i0 = 0; i0 < p->dims[0]; ++i0) {
        for (i1 = 0; i1 < p->dims[1]; ++i1) {
            for (i2 = 0; i2 < p->dims[2]; ++i2) {
                const int8_t *x = a + i0 * p->a_strides[0] + i1 * p->a_strides[1] + i2 * p->a_strides[2];
                const int8_t *y = b + i0 * p->b_strides[0] + i1 * p->b_strides[1] + i2 * p->b_strides[2];
                for (i3 = 0; i3 < p->dims[3]; ++i3) {
                    const int32_t u = p->a_offset + x[i3 * p->a_strides[3]];
                    const int32_t v = p->b_offset + y[i3 * p->b_strides[3]];
                    const int32_t su = ec_requantize(u * (1 << p->left_shift), p->a_mult, p->a_shift);
                    const int32_t sv = ec_requantize(v * (1 << p->left_shift), p->b_mult, p->b_shift);
                    const int32_t r = ec_requantize(p->subtract ? su - sv : su + sv, p->out_mult, p->out_shift);
                    *out++ = ec_clamp8(r + p->out_offset, p->act_min, p->act_max);
                }
            }
        }
    }
}
