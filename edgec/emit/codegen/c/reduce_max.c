/* REDUCE_MAX and REDUCE_MIN over contiguous dimensions, int8 (input and output
 * share their quantization, as TFLite-Micro requires): the raw extreme. */
struct ec_reduce_max {
    int outer, reduced, inner;   /* input [outer][reduced][inner] -> output [outer][inner] */
    int minimum;
};

static void ec_reduce_max(const struct ec_reduce_max *p, const int8_t *in, int8_t *out)
{
    int o, r, i;
    for (o = 0; o < p->outer; ++o, out += p->inner) {
        const int8_t *src = in + o * p->reduced * p->inner;
        for (i = 0; i < p->inner; ++i) {
            out[i] = p->minimum ? 127 : -128;
        }
        for (r = 0; r < p->reduced; ++r, src += p->inner) {
            for (i = 0; i < p->inner; ++i) {
                out[i] = (p->minimum ? src[i] < out[i] : src[i] > out[i]) ? src[i] : out[i];
            }
        }
    }
}
