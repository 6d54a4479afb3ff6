/* FULLY_CONNECTED, int8: TFLite's reference_integer_ops::FullyConnected and
 * FullyConnectedPerChannel (per_channel = 0 uses mult[0] and shift[0]). */
static void ec_fully_connected(const int8_t *in, int batches, int depth,
                               const int8_t *filter, const int32_t *bias, int8_t *out, int units,
                               int32_t in_offset, int32_t filter_offset, int32_t out_offset,
                               const int32_t *mult, const int32_t *shift, int per_channel,
                               int32_t act_min, int32_t act_max)
{
    int b, u, d;
    for (b = 0; b < batches; ++b) {
        const int8_t *x = in + b * depth;
        for (u = 0; u < units; ++u) {
            const int8_t *w = filter + u * depth;
            const int q = per_channel ? u : 0;
            int32_t acc = 0;
            for (d = 0; d < depth; ++d) {
                acc += ((int32_t)w[d] + filter_offset) * ((int32_t)x[d] + in_offset);
            }
            if (bias) {
                acc += bias[u];
            }
            acc = ec_requantize(acc, mult[q], shift[q]) + out_offset;
            out[b * units + u] = ec_clamp8(acc, act_min, act_max);
        }
    }
}
