/* ADD and SUB, int8, with broadcasting: TFLite's reference_integer_ops::Add /
 * BroadcastAdd and reference_ops::Sub for int8; both inputs rescaled to twice
 * the larger scale after a left shift of 20, then the sum (or difference)
 * requantized. */
struct ec_add {
    struct ec_broadcast shape;
    int32_t a_offset, a_mult, a_shift;
    int32_t b_offset, b_mult, b_shift;
    int left_shift;
    int subtract;
    int32_t out_mult, out_shift, out_offset;
    int32_t act_min, act_max;
};

static inline int8_t ec_add_one(const struct ec_add *p, int32_t u, int32_t v)
{
    const int32_t su = ec_requantize((p->a_offset + u) * (1 << p->left_shift), p->a_mult, p->a_shift);
    const int32_t sv = ec_requantize((p->b_offset + v) * (1 << p->left_shift), p->b_mult, p->b_shift);
    const int32_t r = ec_requantize(p->subtract ? su - sv : su + sv, p->out_mult, p->out_shift);
    return ec_clamp8(r + p->out_offset, p->act_min, p->act_max);
}

EC_SPECIALIZED void ec_add(const struct ec_add *p, const int8_t *a, const int8_t *b, int8_t *out)
{
    EC_BROADCAST(&p->shape, a, b, out, ec_add_one(p, u, v));
}
