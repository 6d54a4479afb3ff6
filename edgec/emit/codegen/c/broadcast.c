/* The loop of every binary elementwise op, with broadcasting over up to four
 * dimensions (a stride of 0 repeats an input along that dimension): for each
 * output element in order, `u` and `v` are the two inputs' values (int32) and
 * `value` the expression of them that the element gets. An input of the
 * output's shape is read just before that element is written, so the output may
 * overwrite it. */
struct ec_broadcast {
    int dims[4];
    int a_strides[4];
    int b_strides[4];
};

#define EC_BROADCAST(s, a, b, out, value)                                                           \
    do {                                                                                            \
        int i0_, i1_, i2_, i3_;                                                                     \
        int8_t *o_ = (out);                                                                         \
        for (i0_ = 0; i0_ < (s)->dims[0]; ++i0_) {                                                  \
            for (i1_ = 0; i1_ < (s)->dims[1]; ++i1_) {                                              \
                for (i2_ = 0; i2_ < (s)->dims[2]; ++i2_) {                                          \
                    const int8_t *x_ = (a) + i0_ * (s)->a_strides[0] + i1_ * (s)->a_strides[1] +    \
                                       i2_ * (s)->a_strides[2];                                     \
                    const int8_t *y_ = (b) + i0_ * (s)->b_strides[0] + i1_ * (s)->b_strides[1] +    \
                                       i2_ * (s)->b_strides[2];                                     \
                    for (i3_ = 0; i3_ < (s)->dims[3]; ++i3_) {                                      \
                        const int32_t u = x_[i3_ * (s)->a_strides[3]];                              \
                        const int32_t v = y_[i3_ * (s)->b_strides[3]];                              \
                        *o_++ = (int8_t)(value);                                                    \
                    }                                                                               \
                }                                                                                   \
            }                                                                                       \
        }                                                                                           \
    } while (0)
