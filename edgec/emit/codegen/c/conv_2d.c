/* CONV_2D, int8 (TFLite's reference_integer_ops::ConvPerChannel, batch 1, any
 * dilation) as an
 * im2col matrix product, two output pixels at a time, one product per group of
 * a grouped convolution. A 1x1 convolution without padding over a multiple of 4
 * channels per group reads its input in place; otherwise each pixel's patch is
 * copied into the scratch buffer (a kernel row at once where it is contiguous),
 * with the input zero point where the kernel overhangs the border, so that the
 * folded input offset makes those taps contribute nothing, as the reference
 * kernel's skipped taps do. */
struct ec_conv_2d {
    int in_h, in_w, in_c;
    int out_h, out_w, out_c;
    int k_h, k_w;
    int stride_h, stride_w;
    int dilation_h, dilation_w;
    int pad_h, pad_w;
    int8_t in_zero_point;
    int in_place;                 /* 1x1, no padding, group_c a multiple of 4: no patches */
    int groups;                   /* in_c / group_c */
    int group_c;                  /* input channels per group */
    const struct ec_rows *rows;   /* one per group; rows.k = k_h * k_w * group_c padded to 4 */
};

EC_SPECIALIZED const int8_t *ec_conv_patch(const struct ec_conv_2d *p, const int8_t *in, int pixel, int8_t *col)
{
    const int oy = pixel / p->out_w;
    const int ox = pixel % p->out_w;
    const int y0 = oy * p->stride_h - p->pad_h;
    const int x0 = ox * p->stride_w - p->pad_w;
    const int gc = p->group_c;
    const int row_bytes = p->k_w * gc;
    int8_t *dst = col;
    int ky, kx;
    if (p->in_place) {
        return in + (y0 * p->in_w + x0) * p->in_c;
    }
    for (ky = 0; ky < p->k_h; ++ky, dst += row_bytes) {
        const int y = y0 + ky * p->dilation_h;
        if (y < 0 || y >= p->in_h) {
            ec_fill_bytes(dst, p->in_zero_point, row_bytes);
        } else if (x0 >= 0 && x0 + p->k_w <= p->in_w && gc == p->in_c && p->dilation_w == 1) {
            ec_copy_bytes(dst, in + (y * p->in_w + x0) * p->in_c, row_bytes);
        } else {
            for (kx = 0; kx < p->k_w; ++kx) {
                const int x = x0 + kx * p->dilation_w;
                if (x < 0 || x >= p->in_w) {
                    ec_fill_bytes(dst + kx * gc, p->in_zero_point, gc);
                } else {
                    ec_copy_bytes(dst + kx * gc, in + (y * p->in_w + x) * p->in_c, gc);
                }
            }
        }
    }
    return col;
}

/* scratch: 2 * rows.k bytes (none when in_place), then, for look-up-table weights, a group's
 * rows decoded (rows.k times the even row count) */
EC_SPECIALIZED void ec_conv_2d(const struct ec_conv_2d *p, const int8_t *in, int8_t *out, int8_t *scratch)
{
    const int pixels = p->out_h * p->out_w;
    const int patch = p->k_h * p->k_w * p->group_c;
    const int k = p->rows[0].k;
#ifdef EC_LUT
    int8_t *decoded = scratch + (p->in_place ? 0 : 2 * k);
#endif
    int g, px;
    if (!p->in_place) {
        /* the zero-weight tail of each padded patch */
        ec_fill_bytes(scratch + patch, 0, k - patch);
        ec_fill_bytes(scratch + k + patch, 0, k - patch);
    }
    for (g = 0; g < p->groups; ++g) {
        const struct ec_rows *rows = &p->rows[g];
#ifdef EC_LUT
        struct ec_rows plain;
        if (rows->lut != 0) {
            /* every pixel reads every row: the group's weights are decoded once */
            ec_lut_decode(rows->lut, k, 0, (rows->rows + 1) >> 1, decoded);
            plain = *rows;
            plain.weights = decoded;
            plain.lut = 0;
            rows = &plain;
        }
#endif
        const int8_t *src = in + g * p->group_c;
        int8_t *dst = out + g * rows->rows;
        for (px = 0; px < pixels; px += 2) {
            /* one call site, so that each op inlines one copy of the product */
            const int two = px + 1 < pixels;
            const int8_t *c0 = ec_conv_patch(p, src, px, scratch);
            const int8_t *c1 = two ? ec_conv_patch(p, src, px + 1, scratch + k) : 0;
            ec_mat_mult(rows, c0, c1, dst + px * p->out_c, two ? dst + (px + 1) * p->out_c : 0, 0);
        }
    }
}

/* One compiled copy for every op that calls it: for long rows, where the loop overhead the
 * specialized copy saves is small against the products, and flash matters more. */
EC_SHARED void ec_conv_2d_shared(const struct ec_conv_2d *p, const int8_t *in, int8_t *out, int8_t *scratch)
{
    ec_conv_2d(p, in, out, scratch);
}
