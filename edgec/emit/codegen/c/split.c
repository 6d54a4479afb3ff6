/* SPLIT, SPLIT_V, UNPACK, int8: each output is a slice of the input along one
 * axis (TFLite-Micro copies the values whatever the outputs' quantization). Per
 * block of the dimensions before the axis, each output's slice in turn: the
 * inverse of CONCATENATION. */
static void ec_split(const int8_t *in, int8_t *const *out, const int *slice, int outputs, int blocks)
{
    int b, k;
    for (b = 0; b < blocks; ++b) {
        for (k = 0; k < outputs; ++k) {
            ec_copy_bytes(out[k] + b * slice[k], in, slice[k]);
            in += slice[k];
        }
    }
}
