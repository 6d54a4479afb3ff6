/* The int8 matrix product under CONV_2D and FULLY_CONNECTED: one or two columns
 * of k input values (an im2col patch or an input row) times every row of weights,
 * two rows at a time, then TFLite's per-row requantization. Laid out by edgec at
 * generation time: the weights of rows 2r and 2r+1 interleaved four bytes at a
 * time, k padded with zero weights to a multiple of 4, an even row count (a zero
 * row added), and the input offset folded into the bias (bias + offset x the row's
 * weight sum), so the inner loop is four loads, eight SXTB16 and eight SMLAD for
 * sixteen multiply-accumulates.
 * Look-up-table weights (edgec.emit.codegen.lut) hold that same stream as k-bit
 * indices, eight (four of each row) in k bytes, the first in the lowest bits, and
 * a table of 2^k values per row; ec_lut_decode writes the bytes back exactly
 * (compiled where the generator defines EC_LUT: a model with such weights). */
struct ec_lut {
    int bits;                 /* 1 .. 4 */
    const uint8_t *indices;
    const int8_t *tables;     /* 1 << bits values per row */
};

#ifdef EC_LUT
/* four table values, indexed by the four `bits`-bit fields of x from bit `at`, as one word */
EC_SPECIALIZED uint32_t ec_lut_word(const int8_t *t, uint32_t x, const int at, const int bits)
{
    const uint32_t mask = (1u << bits) - 1u;
    return (uint32_t)(uint8_t)t[(x >> at) & mask] | (uint32_t)(uint8_t)t[(x >> (at + bits)) & mask] << 8 |
           (uint32_t)(uint8_t)t[(x >> (at + 2 * bits)) & mask] << 16 |
           (uint32_t)(uint8_t)t[(x >> (at + 3 * bits)) & mask] << 24;
}

/* `groups` groups of eight weights (four of row t0's, four of t1's) from `bits` bytes each; `bits` is a
 * constant in each call, so that the shifts and masks fold */
EC_SPECIALIZED void ec_lut_groups(const uint8_t *src, const int8_t *t0, const int8_t *t1, int groups, int8_t *dst,
                                  const int bits)
{
    for (; groups > 0; --groups, src += bits, dst += 8) {
        uint32_t x = src[0], w;
        if (bits > 1) {
            x |= (uint32_t)src[1] << 8;
        }
        if (bits > 2) {
            x |= (uint32_t)src[2] << 16;
        }
        if (bits > 3) {
            x |= (uint32_t)src[3] << 24;
        }
        w = ec_lut_word(t0, x, 0, bits);
        memcpy(dst, &w, 4);
        w = ec_lut_word(t1, x, 4 * bits, bits);
        memcpy(dst + 4, &w, 4);
    }
}

/* Writes `pairs` pairs of rows of k weights, from pair `first`, in the paired layout. */
EC_HELPER void ec_lut_decode(const struct ec_lut *l, int k, int first, int pairs, int8_t *dst)
{
    const int bits = l->bits;
    const int groups = k >> 2;
    const uint8_t *src = l->indices + first * groups * bits;
    const int8_t *t0 = l->tables + ((2 * first) << bits);
    int p;
    for (p = 0; p < pairs; ++p, src += groups * bits, t0 += 2 << bits, dst += 2 * k) {
        const int8_t *t1 = t0 + (1 << bits);
        /* a copy for each width the model uses (EC_LUT_BITS_<n>, defined by the generator) */
        switch (bits) {
#ifdef EC_LUT_BITS_1
        case 1:
            ec_lut_groups(src, t0, t1, groups, dst, 1);
            break;
#endif
#ifdef EC_LUT_BITS_2
        case 2:
            ec_lut_groups(src, t0, t1, groups, dst, 2);
            break;
#endif
#ifdef EC_LUT_BITS_3
        case 3:
            ec_lut_groups(src, t0, t1, groups, dst, 3);
            break;
#endif
        default:
            ec_lut_groups(src, t0, t1, groups, dst, 4);
            break;
        }
    }
}
#endif

struct ec_rows {
    int k;                    /* values per row, a multiple of 4 */
    int rows;                 /* output channels (the weights hold an even number) */
    const int8_t *weights;    /* or NULL, and: */
    const struct ec_lut *lut; /* the weights as indices and tables */
    const int32_t *bias;      /* per row, the input offset folded in */
    const int32_t *mult;      /* per row */
    const int8_t *shift;      /* per row, -31 .. 31 */
    int32_t out_offset;
    int32_t act_min;
    int32_t act_max;
};

static inline int8_t ec_row_output(const struct ec_rows *m, int32_t acc, int r)
{
    return ec_clamp8(ec_requantize(acc, m->mult[r], m->shift[r]) + m->out_offset, m->act_min, m->act_max);
}

/* o0[r] = row r . c0 for every row; and o1[r] = row r . c1 when c1 is not NULL. Look-up-table
 * weights are decoded a pair of rows at a time into `pair` (2 * k bytes). */
EC_SPECIALIZED void ec_mat_mult(const struct ec_rows *m, const int8_t *c0, const int8_t *c1,
                        int8_t *o0, int8_t *o1, int8_t *pair)
{
    const int8_t *w = m->weights;
    int r, j;
    for (r = 0; r < m->rows; r += 2) {
        const int8_t *a = c0;
#ifdef EC_LUT
        if (m->lut != 0) {
            ec_lut_decode(m->lut, m->k, r >> 1, 1, pair);
            w = pair;
        }
#else
        (void)pair;
#endif
        int32_t acc00 = m->bias[r];
        int32_t acc01 = m->bias[r + 1];
        if (c1 != 0) {
            const int8_t *b = c1;
            int32_t acc10 = acc00;
            int32_t acc11 = acc01;
            for (j = m->k >> 2; j > 0; --j) {
                const uint32_t x = ec_load4(a);
                const uint32_t y = ec_load4(b);
                const uint32_t u = ec_load4(w);
                const uint32_t v = ec_load4(w + 4);
                const int32_t x02 = ec_sxtb16(x);
                const int32_t x13 = ec_sxtb16_ror8(x);
                const int32_t y02 = ec_sxtb16(y);
                const int32_t y13 = ec_sxtb16_ror8(y);
                int32_t w02 = ec_sxtb16(u);
                int32_t w13 = ec_sxtb16_ror8(u);
                acc00 = ec_smlad(x02, w02, acc00);
                acc00 = ec_smlad(x13, w13, acc00);
                acc10 = ec_smlad(y02, w02, acc10);
                acc10 = ec_smlad(y13, w13, acc10);
                w02 = ec_sxtb16(v);
                w13 = ec_sxtb16_ror8(v);
                acc01 = ec_smlad(x02, w02, acc01);
                acc01 = ec_smlad(x13, w13, acc01);
                acc11 = ec_smlad(y02, w02, acc11);
                acc11 = ec_smlad(y13, w13, acc11);
                a += 4;
                b += 4;
                w += 8;
            }
            o1[r] = ec_row_output(m, acc10, r);
            if (r + 1 < m->rows) {
                o1[r + 1] = ec_row_output(m, acc11, r + 1);
            }
        } else {
            for (j = m->k >> 2; j > 0; --j) {
                const uint32_t x = ec_load4(a);
                const int32_t x02 = ec_sxtb16(x);
                const int32_t x13 = ec_sxtb16_ror8(x);
                const uint32_t u = ec_load4(w);
                const uint32_t v = ec_load4(w + 4);
                acc00 = ec_smlad(x02, ec_sxtb16(u), acc00);
                acc00 = ec_smlad(x13, ec_sxtb16_ror8(u), acc00);
                acc01 = ec_smlad(x02, ec_sxtb16(v), acc01);
                acc01 = ec_smlad(x13, ec_sxtb16_ror8(v), acc01);
                a += 4;
                w += 8;
            }
        }
        o0[r] = ec_row_output(m, acc00, r);
        if (r + 1 < m->rows) {
            o0[r + 1] = ec_row_output(m, acc01, r + 1);
        }
    }
}
