/* Saturate an int32 result into the fused activation's int8 range. */
static int8_t ec_clamp8(int32_t x, int32_t lo, int32_t hi)
{
    return (int8_t)(x < lo ? lo : (x > hi ? hi : x));
}
