/* DEPTHWISE_CONV_2D, int8, per-channel: TFLite's
 * reference_integer_ops::DepthwiseConvPerChannel, batch 1. Filter is 1HWO. */
static void ec_depthwise_conv_2d(const int8_t *in, int in_h, int in_w, int in_c,
                                 const int8_t *filter, int k_h, int k_w, int multiplier,
                                 const int32_t *bias, int8_t *out, int out_h, int out_w, int out_c,
                                 int stride_h, int stride_w, int pad_h, int pad_w,
                                 int32_t in_offset, int32_t out_offset,
                                 const int32_t *mult, const int32_t *shift,
                                 int32_t act_min, int32_t act_max)
{
    int oy, ox, ic, m, ky, kx;
    for (oy = 0; oy < out_h; ++oy) {
        for (ox = 0; ox < out_w; ++ox) {
            const int y0 = oy * stride_h - pad_h;
            const int x0 = ox * stride_w - pad_w;
            for (ic = 0; ic < in_c; ++ic) {
                for (m = 0; m < multiplier; ++m) {
                    const int oc = ic * multiplier + m;
                    int32_t acc = 0;
                    for (ky = 0; ky < k_h; ++ky) {
                        const int y = y0 + ky;
                        if (y < 0 || y >= in_h) {
                            continue;
                        }
                        for (kx = 0; kx < k_w; ++kx) {
                            const int x = x0 + kx;
                            if (x < 0 || x >= in_w) {
                                continue;
                            }
                            acc += (int32_t)filter[(ky * k_w + kx) * out_c + oc] *
                                   ((int32_t)in[(y * in_w + x) * in_c + ic] + in_offset);
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
}
