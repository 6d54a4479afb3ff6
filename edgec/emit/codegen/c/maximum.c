/* MAXIMUM and MINIMUM, int8, with broadcasting: TFLite-Micro compares the raw
 * int8 values (the converter gives both inputs the output's quantization). */
struct ec_maximum {
    struct ec_broadcast shape;
    int minimum;
};

static void ec_maximum(const struct ec_maximum *p, const int8_t *a, const int8_t *b, int8_t *out)
{
    EC_BROADCAST(&p->shape, a, b, out, (p->minimum ? u < v : u > v) ? u : v);
}
