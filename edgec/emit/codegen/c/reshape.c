/* RESHAPE (and any op that only moves bytes): a copy when source and
 * destination differ; edgec aliases them where it can. */
static void ec_copy(const int8_t *src, int8_t *dst, int n)
{
    int i;
    if (src == dst) {
        return;
    }
    for (i = 0; i < n; ++i) {
        dst[i] = src[i];
    }
}
