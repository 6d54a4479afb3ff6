/* FULLY_CONNECTED, int8 (TFLite's reference_integer_ops::FullyConnected and
 * FullyConnectedPerChannel): input rows times the weights, two rows of input at a
 * time. A depth that is not a multiple of 4 goes through ec_fully_connected_padded,
 * which copies each input row into its scratch buffer (2 * rows.k bytes), zero
 * padded. Look-up-table weights are decoded a pair of rows at a time into the
 * scratch buffer's last 2 * rows.k bytes. */
struct ec_fully_connected {
    int batches;
    int depth;
    struct ec_rows rows;
};

EC_SPECIALIZED void ec_fully_connected(const struct ec_fully_connected *p, const int8_t *in, int8_t *out,
                                      int8_t *scratch)
{
    const int units = p->rows.rows;
    int b;
    for (b = 0; b < p->batches; b += 2) {
        const int two = b + 1 < p->batches;
        ec_mat_mult(&p->rows, in + b * p->depth, two ? in + (b + 1) * p->depth : 0, out + b * units,
                    two ? out + (b + 1) * units : 0, scratch);
    }
}

EC_SPECIALIZED void ec_fully_connected_padded(const struct ec_fully_connected *p, const int8_t *in, int8_t *out,
                                             int8_t *scratch)
{
    const int units = p->rows.rows;
    int b;
    ec_fill_bytes(scratch, 0, 2 * p->rows.k);
    for (b = 0; b < p->batches; b += 2) {
        const int two = b + 1 < p->batches;
        ec_copy_bytes(scratch, in + b * p->depth, p->depth);
        if (two) {
            ec_copy_bytes(scratch + p->rows.k, in + (b + 1) * p->depth, p->depth);
        }
        ec_mat_mult(&p->rows, scratch, two ? scratch + p->rows.k : 0, out + b * units,
                    two ? out + (b + 1) * units : 0, scratch + 2 * p->rows.k);
    }
}
