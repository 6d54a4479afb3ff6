/* DEPTHWISE_CONV_2D, int8, per-channel (TFLite's
 * reference_integer_ops::DepthwiseConvPerChannel, batch 1, any dilation;
 * filter 1HWO). With a
 * depth multiplier of 1 and a multiple of 4 channels, four channels at a time:
 * per kernel tap one load of inputs and one of weights, the input offset added to
 * both int16 halves (SADD16), and one SMLABB or SMLATT per channel. */
struct ec_depthwise_conv_2d {
    int in_h, in_w, in_c;
    int out_h, out_w, out_c;
    int k_h, k_w;
    int multiplier;           /* output channels per input channel */
    int stride_h, stride_w;
    int dilation_h, dilation_w;
    int pad_h, pad_w;
    int32_t in_offset;
    int32_t out_offset;
    int32_t act_min;
    int32_t act_max;
    const int8_t *weights;    /* [k_h][k_w][out_c] */
    const int32_t *bias;
    const int32_t *mult;
    const int8_t *shift;      /* -31 .. 31 */
};

/* the kernel positions [lo, hi) of a window starting at `start` that fall inside [0, size), with dilation d */
static inline int ec_taps_lo(int start, int d)
{
    return start >= 0 ? 0 : (d == 1 ? -start : (-start + d - 1) / d);
}

static inline int ec_taps_hi(int start, int size, int k, int d)
{
    if (d == 1) {
        return start + k > size ? size - start : k;
    }
    return (size - start + d - 1) / d < k ? (size - start + d - 1) / d : k;
}

static inline int8_t ec_dw_output(const struct ec_depthwise_conv_2d *p, int32_t acc, int c)
{
    return ec_clamp8(ec_requantize(acc, p->mult[c], p->shift[c]) + p->out_offset, p->act_min, p->act_max);
}

EC_SPECIALIZED void ec_depthwise_conv_2d(const struct ec_depthwise_conv_2d *p, const int8_t *in, int8_t *out)
{
    const int simd = p->multiplier == 1 && p->in_c % 4 == 0;
    const int32_t offset2 = (int32_t)(((uint32_t)p->in_offset & 0xFFFFu) | ((uint32_t)p->in_offset << 16));
    int oy, ox, c, m, ky, kx;
    for (oy = 0; oy < p->out_h; ++oy) {
        const int y0 = oy * p->stride_h - p->pad_h;
        /* the kernel rows and columns inside the input */
        const int dh = p->dilation_h, dw = p->dilation_w;
        const int ky_lo = ec_taps_lo(y0, dh);
        const int ky_hi = ec_taps_hi(y0, p->in_h, p->k_h, dh);
        for (ox = 0; ox < p->out_w; ++ox) {
            const int x0 = ox * p->stride_w - p->pad_w;
            const int kx_lo = ec_taps_lo(x0, dw);
            const int kx_hi = ec_taps_hi(x0, p->in_w, p->k_w, dw);
            int8_t *o = out + (oy * p->out_w + ox) * p->out_c;
            if (simd) {
                for (c = 0; c < p->in_c; c += 4) {
                    int32_t acc0 = p->bias[c];
                    int32_t acc1 = p->bias[c + 1];
                    int32_t acc2 = p->bias[c + 2];
                    int32_t acc3 = p->bias[c + 3];
                    for (ky = ky_lo; ky < ky_hi; ++ky) {
                        const int8_t *src = in + ((y0 + ky * dh) * p->in_w + x0 + kx_lo * dw) * p->in_c + c;
                        const int8_t *w = p->weights + (ky * p->k_w + kx_lo) * p->out_c + c;
                        for (kx = kx_lo; kx < kx_hi; ++kx) {
                            const uint32_t x = ec_load4(src);
                            const uint32_t u = ec_load4(w);
                            const int32_t x02 = ec_sadd16(ec_sxtb16(x), offset2);
                            const int32_t x13 = ec_sadd16(ec_sxtb16_ror8(x), offset2);
                            const int32_t w02 = ec_sxtb16(u);
                            const int32_t w13 = ec_sxtb16_ror8(u);
                            acc0 = ec_smlabb(x02, w02, acc0);
                            acc2 = ec_smlatt(x02, w02, acc2);
                            acc1 = ec_smlabb(x13, w13, acc1);
                            acc3 = ec_smlatt(x13, w13, acc3);
                            src += dw * p->in_c;
                            w += p->out_c;
                        }
                    }
                    o[c] = ec_dw_output(p, acc0, c);
                    o[c + 1] = ec_dw_output(p, acc1, c + 1);
                    o[c + 2] = ec_dw_output(p, acc2, c + 2);
                    o[c + 3] = ec_dw_output(p, acc3, c + 3);
                }
                continue;
            }
            for (c = 0; c < p->in_c; ++c) {
                for (m = 0; m < p->multiplier; ++m) {
                    const int oc = c * p->multiplier + m;
                    int32_t acc = p->bias[oc];
                    for (ky = ky_lo; ky < ky_hi; ++ky) {
                        for (kx = kx_lo; kx < kx_hi; ++kx) {
                            acc += (int32_t)p->weights[(ky * p->k_w + kx) * p->out_c + oc] *
                                   ((int32_t)in[((y0 + ky * dh) * p->in_w + x0 + kx * dw) * p->in_c + c] + p->in_offset);
                        }
                    }
                    o[oc] = ec_dw_output(p, acc, oc);
                }
            }
        }
    }
}
