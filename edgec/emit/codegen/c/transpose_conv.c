/* TRANSPOSE_CONV, int8, per-channel: TFLite's reference_integer_ops::TransposeConv,
 * batch 1. Each input value is scattered into int32 sums of the outputs it
 * reaches (scratch: 4 bytes per output value), then bias, requantization and
 * the fused activation. Filter [out_c][k_h][k_w][in_c]. */
struct ec_transpose_conv {
    int in_h, in_w, in_c;
    int out_h, out_w, out_c;
    int k_h, k_w;
    int stride_h, stride_w;
    int pad_h, pad_w;
    int32_t in_offset, out_offset;
    int32_t act_min, act_max;
    const int8_t *weights;
    const int32_t *bias;
    const int32_t *mult;
    const int8_t *shift;
};

static void ec_transpose_conv(const struct ec_transpose_conv *p, const int8_t *in, int8_t *out, int8_t *scratch)
{
    int32_t *sum = (int32_t *)(void *)scratch;
    const int n = p->out_h * p->out_w * p->out_c;
    int iy, ix, ic, ky, kx, oc, k;
    for (k = 0; k < n; ++k) {
        sum[k] = 0;
    }
    for (iy = 0; iy < p->in_h; ++iy) {
        for (ix = 0; ix < p->in_w; ++ix) {
            for (ic = 0; ic < p->in_c; ++ic) {
                const int32_t x = in[(iy * p->in_w + ix) * p->in_c + ic] + p->in_offset;
                for (ky = 0; ky < p->k_h; ++ky) {
                    const int oy = iy * p->stride_h - p->pad_h + ky;
                    if (oy < 0 || oy >= p->out_h) {
                        continue;
                    }
                    for (kx = 0; kx < p->k_w; ++kx) {
                        const int ox = ix * p->stride_w - p->pad_w + kx;
                        int32_t *s;
                        const int8_t *w;
                        if (ox < 0 || ox >= p->out_w) {
                            continue;
                        }
                        s = sum + (oy * p->out_w + ox) * p->out_c;
                        w = p->weights + (ky * p->k_w + kx) * p->in_c + ic;
                        for (oc = 0; oc < p->out_c; ++oc) {
                            s[oc] += x * w[oc * p->k_h * p->k_w * p->in_c];
                        }
                    }
                }
            }
        }
    }
    for (k = 0; k < n; ++k) {
        const int c = k % p->out_c;
        const int32_t v = ec_requantize(sum[k] + p->bias[c], p->mult[c], p->shift[c]) + p->out_offset;
        out[k] = ec_clamp8(v, p->act_min, p->act_max);
    }
}
