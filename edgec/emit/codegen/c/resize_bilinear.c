/* RESIZE_BILINEAR, int8: TFLite's reference_ops::ResizeBilinearInteger (10-bit
 * fixed-point positions, the four weighted neighbours summed and rounded half
 * away from zero at 2^20). The source rows, columns and fractions per output
 * row and column were computed at generation time as that kernel does. */
struct ec_resize_bilinear {
    int in_w, channels, out_h, out_w;
    const int16_t *y0, *y1, *fy;
    const int16_t *x0, *x1, *fx;
};

static void ec_resize_bilinear(const struct ec_resize_bilinear *p, const int8_t *in, int8_t *out)
{
    int y, x, c;
    for (y = 0; y < p->out_h; ++y) {
        const int8_t *r0 = in + p->y0[y] * p->in_w * p->channels;
        const int8_t *r1 = in + p->y1[y] * p->in_w * p->channels;
        const int32_t wy1 = p->fy[y];
        const int32_t wy0 = 1024 - wy1;
        for (x = 0; x < p->out_w; ++x) {
            const int32_t wx1 = p->fx[x];
            const int32_t wx0 = 1024 - wx1;
            const int8_t *a = r0 + p->x0[x] * p->channels;
            const int8_t *b = r1 + p->x0[x] * p->channels;
            const int8_t *d = r0 + p->x1[x] * p->channels;
            const int8_t *e = r1 + p->x1[x] * p->channels;
            for (c = 0; c < p->channels; ++c) {
                const int32_t v = a[c] * wy0 * wx0 + b[c] * wy1 * wx0 + d[c] * wy0 * wx1 + e[c] * wy1 * wx1;
                *out++ = (int8_t)((v + (v > 0 ? (1 << 19) : -(1 << 19))) / (1 << 20));
            }
        }
    }
}
