/* MAX_POOL_2D, int8: TFLite's reference_integer_ops::MaxPool, batch 1. */
static void ec_max_pool_2d(const int8_t *in, int in_h, int in_w, int channels,
                           int8_t *out, int out_h, int out_w, int f_h, int f_w,
                           int stride_h, int stride_w, int pad_h, int pad_w,
                           int32_t act_min, int32_t act_max)
{
    int oy, ox, c, fy, fx;
    for (oy = 0; oy < out_h; ++oy) {
        for (ox = 0; ox < out_w; ++ox) {
            const int y0 = oy * stride_h - pad_h;
            const int x0 = ox * stride_w - pad_w;
            const int fy0 = y0 < 0 ? -y0 : 0;
            const int fx0 = x0 < 0 ? -x0 : 0;
            const int fy1 = f_h < in_h - y0 ? f_h : in_h - y0;
            const int fx1 = f_w < in_w - x0 ? f_w : in_w - x0;
            for (c = 0; c < channels; ++c) {
                int32_t best = -128;
                for (fy = fy0; fy < fy1; ++fy) {
                    for (fx = fx0; fx < fx1; ++fx) {
                        const int32_t v = in[((y0 + fy) * in_w + (x0 + fx)) * channels + c];
                        best = v > best ? v : best;
                    }
                }
                out[(oy * out_w + ox) * channels + c] = ec_clamp8(best, act_min, act_max);
            }
        }
    }
}
