/* MAXIMUM and MINIMUM, int8, with broadcasting: TFLite-Micro compares the raw
 * int8 values (the converter gives both inputs the output's quantization). */
struct ec_maximum {
    int dims[4];
    int a_strides[4];
    int b_strides[4];
    int minimum;
};

static void ec_maximum(const struct ec_maximum *p, const int8_t *a, const int8_t *b, int8_t *out)
{
    int i0, i1, i2, i3;
    for (i0 = 0; i0 < p->dims[0]; ++i0) {
        for (i1 = 0; i1 < p->dims[1]; ++i1) {
            for (i2 = 0; i2 < p->dims[2]; ++i2) {
                const int8_t *x = a + i0 * p->a_strides[0] + i1 * p->a_strides[1] + i2 * p->a_strides[2];
                const int8_t *y = b + i0 * p->b_strides[0] + i1 * p->b_strides[1] + i2 * p->b_strides[2];
                for (i3 = 0; i3 < p->dims[3]; ++i3) {
                    const int8_t u = x[i3 * p->a_strides[3]];
                    const int8_t v = y[i3 * p->b_strides[3]];
                    *out++ = (p->minimum ? u < v : u > v) ? u : v;
                }
            }
        }
    }
}
