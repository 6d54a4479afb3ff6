/* MUL, int8, with broadcasting: TFLite's reference_integer_ops::Mul /
 * BroadcastMul6DSlow. */
struct ec_mul {
    struct ec_broadcast shape;
    int32_t a_offset, b_offset, out_offset;
    int32_t mult, shift;
    int32_t act_min, act_max;
};

static void ec_mul(const struct ec_mul *p, const int8_t *a, const int8_t *b, int8_t *out)
{
    EC_BROADCAST(&p->shape, a, b, out,
                 ec_clamp8(ec_requantize((p->a_offset + u) * (p->b_offset + v), p->mult, p->shift) + p->out_offset,
                           p->act_min, p->act_max));
}
