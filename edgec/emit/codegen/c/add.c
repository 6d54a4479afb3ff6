/* ADD, int8, with broadcasting over up to four dimensions (a stride of 0
 * repeats an input): TFLite's reference_integer_ops::Add / BroadcastAdd. */
static void ec_add(const int8_t *a, const int8_t *b, int8_t *out, const int dims[4],
                   const int a_strides[4], const int b_strides[4],
                   int32_t a_offset, int32_t a_mult, int32_t a_shift,
                   int32_t b_offset, int32_t b_mult, int32_t b_shift, int left_shift,
                   int32_t out_mult, int32_t out_shift, int32_t out_offset,
                   int32_t act_min, int32_t act_max)
{
    int i0, i1, i2, i3;
    int8_t *o = out;
    for (i0 = 0; i0 < dims[0]; ++i0) {
        for (i1 = 0; i1 < dims[1]; ++i1) {
            for (i2 = 0; i2 < dims[2]; ++i2) {
                for (i3 = 0; i3 < dims[3]; ++i3) {
                    const int32_t x = a_offset + a[i0 * a_strides[0] + i1 * a_strides[1] +
                                                   i2 * a_strides[2] + i3 * a_strides[3]];
                    const int32_t y = b_offset + b[i0 * b_strides[0] + i1 * b_strides[1] +
                                                   i2 * b_strides[2] + i3 * b_strides[3]];
                    const int32_t sx = ec_requantize(x * (1 << left_shift), a_mult, a_shift);
                    const int32_t sy = ec_requantize(y * (1 << left_shift), b_mult, b_shift);
                    const int32_t r = ec_requantize(sx + sy, out_mult, out_shift) + out_offset;
                    *o++ = ec_clamp8(r, act_min, act_max);
                }
            }
        }
    }
}
