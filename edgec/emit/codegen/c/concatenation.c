/* CONCATENATION, int8: TFLite-Micro requires every input to share the output's
 * scale and zero point, so it only copies. Per block of the dimensions before
 * the axis, each input's slice in turn. */
static void ec_concatenation(const int8_t *const *in, const int *slice, int inputs, int blocks, int8_t *out)
{
    int b, k;
    for (b = 0; b < blocks; ++b) {
        for (k = 0; k < inputs; ++k) {
            ec_copy_bytes(out, in[k] + b * slice[k], slice[k]);
            out += slice[k];
        }
    }
}
