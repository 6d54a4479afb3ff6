/* An op that only moves int8 values (STRIDED_SLICE, SLICE, TRANSPOSE,
 * RESIZE_NEAREST_NEIGHBOR, BROADCAST_TO, TILE, ...): output [i0][i1][i2][i3]
 * is input[base + off0[i0] + off1[i1] + off2[i2] + off3[i3]]. edgec found the
 * offsets at generation time by running TFLite-Micro's kernel for this op on
 * inputs that encode each element's position. */
struct ec_gather {
    int dims[4];
    int32_t base;
    const int32_t *offset[4];
    int contiguous;           /* off3[i] = i: the innermost run is one copy */
};

static void ec_gather(const struct ec_gather *p, const int8_t *in, int8_t *out)
{
    int i0, i1, i2, i3;
    for (i0 = 0; i0 < p->dims[0]; ++i0) {
        for (i1 = 0; i1 < p->dims[1]; ++i1) {
            for (i2 = 0; i2 < p->dims[2]; ++i2) {
                const int8_t *src = in + p->base + p->offset[0][i0] + p->offset[1][i1] + p->offset[2][i2];
                if (p->contiguous) {
                    ec_copy_bytes(out, src, p->dims[3]);
                    out += p->dims[3];
                    continue;
                }
                for (i3 = 0; i3 < p->dims[3]; ++i3) {
                    *out++ = src[p->offset[3][i3]];
                }
            }
        }
    }
}
