/* MEAN over contiguous dimensions (a global average pool: axes 1 and 2 of NHWC),
 * int8: TFLite's QuantizedMeanOrSum as TFLite-Micro runs it. The sum of raw
 * values less zero point x count is requantized with in_scale / out_scale folded
 * with 1 / count at generation time (the same integer division TFLite does).
 * scratch: 4 * inner bytes (the sums). */
struct ec_mean {
    int outer, reduced, inner;   /* input [outer][reduced][inner] -> output [outer][inner] */
    int32_t in_zero_point;
    int32_t mult, shift;
    int32_t out_zero_point;
};

static void ec_mean(const struct ec_mean *p, const int8_t *in, int8_t *out, int8_t *scratch)
{
    int32_t *sum = (int32_t *)(void *)scratch;
    const int32_t removed = p->in_zero_point * p->reduced;
    int o, r, i;
    for (o = 0; o < p->outer; ++o) {
        const int8_t *src = in + o * p->reduced * p->inner;
        for (i = 0; i < p->inner; ++i) {
            sum[i] = 0;
        }
        for (r = 0; r < p->reduced; ++r, src += p->inner) {
            for (i = 0; i < p->inner; ++i) {
                sum[i] += src[i];
            }
        }
        for (i = 0; i < p->inner; ++i) {
            const int32_t v = ec_requantize(sum[i] - removed, p->mult, p->shift) + p->out_zero_point;
            out[o * p->inner + i] = ec_clamp8(v, -128, 127);
        }
    }
}
