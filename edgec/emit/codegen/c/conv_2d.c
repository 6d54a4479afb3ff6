/* CONV_2D, int8 input and output, int8 weights (OHWI) with per-channel scales,
 * int32 bias: TFLite's reference_integer_ops::ConvPerChannel, batch 1. */
static void ec_conv_2d(const int8_t *in, int in_h, int in_w, int in_c,
                       const int8_t *filter, int k_h, int k_w, int filter_c,
                       const int32_t *bias, int8_t *out, int out_h, int out_w, int out_c,
                       int stride_h, int stride_w, int pad_h, int pad_w,
                       int32_t in_offset, int32_t out_offset,
                       const int32_t *mult, const int32_t *shift, int32_t act_min, int32_t act_max)
{
    const int per_group = out_c / (in_c / filter_c);
    int oy, ox, oc, ky, kx, ic;
    for (oy = 0; oy < out_h; ++oy) {
        for (ox = 0; ox < out_w; ++ox) {
            const int y0 = oy * stride_h - pad_h;
            const int x0 = ox * stride_w - pad_w;
            for (oc = 0; oc < out_c; ++oc) {
                const int group_base = (oc / per_group) * filter_c;
                const int8_t *f = filter + oc * k_h * k_w * filter_c;
                int32_t acc = 0;
                for (ky = 0; ky < k_h; ++ky) {
                    const int y = y0 + ky;
                    if (y < 0 || y >= in_h) {
                        continue;
                    }
                    for (kx = 0; kx < k_w; ++kx) {
                        const int x = x0 + kx;
                        const int8_t *src;
                        const int8_t *w;
                        if (x < 0 || x >= in_w) {
                            continue;
                        }
                        src = in + (y * in_w + x) * in_c + group_base;
                        w = f + (ky * k_w + kx) * filter_c;
                        for (ic = 0; ic < filter_c; ++ic) {
                            acc += (int32_t)w[ic] * ((int32_t)src[ic] + in_offset);
                        }
                    }
                }
                if (bias) {
                    acc += bias[oc];
                }
                acc = ec_requantize(acc, mult[oc], shift[oc]) + out_offset;
                out[(oy * out_w + ox) * out_c + oc] = ec_clamp8(acc, act_min, act_max);
            }
        }
    }
}
