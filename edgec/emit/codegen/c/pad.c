/* PAD / PADV2, int8, up to four dimensions: the output's zero point (or the
 * given constant) around a copy of the input, whose quantization it shares. */
struct ec_pad {
    int in_dims[4];
    int out_dims[4];
    int before[4];
    int8_t value;
};

static void ec_pad(const struct ec_pad *p, const int8_t *in, int8_t *out)
{
    const int row = p->out_dims[3];
    int a, b, c;
    for (a = 0; a < p->out_dims[0]; ++a) {
        const int ia = a - p->before[0];
        for (b = 0; b < p->out_dims[1]; ++b) {
            const int ib = b - p->before[1];
            for (c = 0; c < p->out_dims[2]; ++c, out += row) {
                const int ic = c - p->before[2];
                if (ia < 0 || ia >= p->in_dims[0] || ib < 0 || ib >= p->in_dims[1] || ic < 0 ||
                    ic >= p->in_dims[2]) {
                    ec_fill_bytes(out, p->value, row);
                    continue;
                }
                ec_fill_bytes(out, p->value, p->before[3]);
                ec_copy_bytes(out + p->before[3], in + ((ia * p->in_dims[1] + ib) * p->in_dims[2] + ic) * p->in_dims[3],
                              p->in_dims[3]);
                ec_fill_bytes(out + p->before[3] + p->in_dims[3], p->value, row - p->before[3] - p->in_dims[3]);
            }
        }
    }
}
