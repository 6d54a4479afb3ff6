/* QUANTIZE from int8 to int8 (a change of scale or zero point; TFLite's
 * reference_ops::Requantize) and RELU (TFLite-Micro's ReluQuantized): the
 * input less its zero point, requantized, clamped to [lo, hi]. */
static void ec_requantize8(const int8_t *in, int8_t *out, int n, int32_t in_zero_point, int32_t mult,
                           int32_t shift, int32_t out_zero_point, int32_t lo, int32_t hi)
{
    int i;
    for (i = 0; i < n; ++i) {
        out[i] = ec_clamp8(ec_requantize(in[i] - in_zero_point, mult, shift) + out_zero_point, lo, hi);
    }
}
