/* An elementwise int8 op (LOGISTIC, TANH, HARD_SWISH, LEAKY_RELU, ABS, ...) as
 * a table of its 256 outputs, one per int8 input, which edgec computed at
 * generation time by running TFLite-Micro's own kernel for this op on every
 * int8 value: the same function, one load per element. */
static void ec_lookup(const int8_t *in, int8_t *out, int n, const int8_t table[256])
{
    int i;
    for (i = 0; i < n; ++i) {
        out[i] = table[(uint8_t)in[i]];
    }
}
