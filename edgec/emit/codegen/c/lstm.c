/* UNIDIRECTIONAL_SEQUENCE_LSTM, int8 activations and weights, int16 gates and
 * cell state (TFLite-Micro's lstm_eval, 8x8->16): per time step each gate is
 * sat16(FC(x) + FC(h)), each FC requantized to Q3.12 in int16; sigmoid and tanh
 * interpolate a 256-entry table of sigmoid(i/24) read from TFLite-Micro at
 * generation time; the cell state is forget*c + input*cell_gate (Q0.15 products
 * requantized to the cell's scale), optionally clipped; the hidden state is
 * output_gate*tanh(c) requantized to int8, and is copied to the output at every
 * step. The state starts at zero (TFLite-Micro's reset) on every inference.
 * Scratch: five int16 vectors of `units` (four gates, the cell state), then the
 * int8 hidden state. The input offset of each FC is folded into its bias. */
struct ec_lstm_gate {
    const int8_t *in_weights;   /* units x in_depth */
    const int8_t *rec_weights;  /* units x units */
    const int32_t *in_bias;     /* bias + input offset x row sum */
    const int32_t *rec_bias;    /* hidden-state offset x row sum */
    int32_t in_mult;
    int32_t in_shift;
    int32_t rec_mult;
    int32_t rec_shift;
    int tanh;                   /* 1: tanh (the cell gate), 0: sigmoid */
};

struct ec_lstm {
    int steps;
    int in_depth;
    int units;
    struct ec_lstm_gate gates[4];   /* forget, input, cell, output: TFLite-Micro's order */
    int32_t forget_mult;            /* forget gate x cell state -> cell state */
    int32_t forget_shift;
    int32_t input_mult;             /* input gate x cell gate -> cell state */
    int32_t input_shift;
    int32_t hidden_mult;            /* output gate x tanh(cell) -> hidden state */
    int32_t hidden_shift;
    int32_t hidden_zero_point;
    int32_t cell_clip;              /* 0: no clipping */
    int32_t cell_tanh_mult;         /* tanh(cell state): input scaled by mult >> shift */
    int32_t cell_tanh_shift;
    const uint16_t *sigmoid;        /* sigmoid(i / 24) in 0.16, i = 0 .. 255 */
};

static int32_t ec_dot8(const int8_t *x, const int8_t *w, int n)
{
    int32_t acc = 0;
    int j;
    for (j = 0; j + 4 <= n; j += 4) {
        const uint32_t a = ec_load4(x + j);
        const uint32_t b = ec_load4(w + j);
        acc = ec_smlad(ec_sxtb16(a), ec_sxtb16(b), acc);
        acc = ec_smlad(ec_sxtb16_ror8(a), ec_sxtb16_ror8(b), acc);
    }
    for (; j < n; ++j) {
        acc += (int32_t)x[j] * w[j];
    }
    return acc;
}

static int16_t ec_clamp16(int32_t x)
{
    return (int16_t)(x < -32768 ? -32768 : (x > 32767 ? 32767 : x));
}

/* (x * mult + round) >> shift, TFLite's scaling of an int16 input to the table's 3/4096 units */
static int32_t ec_table_input(int32_t x, int32_t mult, int32_t shift)
{
    return (x * mult + (shift > 0 ? 1 << (shift - 1) : 0)) >> shift;
}

static int16_t ec_sigmoid16(const uint16_t *table, int32_t x)
{
    const int32_t v = ec_table_input(x, 3, 0);
    const uint32_t a = (uint32_t)(v < 0 ? -v : v);
    const uint32_t uh = a >> 9;
    uint32_t r;
    if (uh >= 255) {
        r = 0x7FFFu << 10;
    } else {
        const uint32_t lo = table[uh];
        r = (lo << 9) + (a & 0x1FFu) * (table[uh + 1] - lo);
    }
    r = v >= 0 ? r + (1u << 9) : (1u << 25) - r + (1u << 9) - 1u;
    return (int16_t)(r >> 10);
}

static int16_t ec_tanh16(const uint16_t *table, int32_t x, int32_t mult, int32_t shift)
{
    const int32_t v = ec_table_input(x, mult, shift);
    const uint32_t a = (uint32_t)(v < 0 ? -v : v);
    const uint32_t uh = a >> 8;
    int32_t r;
    if (uh >= 255) {
        r = 0xFFFF << 8;
    } else {
        const uint32_t lo = table[uh];
        r = (int32_t)((lo << 8) + (a & 0xFFu) * (table[uh + 1] - lo));
    }
    r = v >= 0 ? r - (1 << 23) + (1 << 7) : -r + (1 << 23) + (1 << 7) - 1;
    return (int16_t)(r >> 8);
}

static void ec_lstm_gate(const struct ec_lstm *p, const struct ec_lstm_gate *g, const int8_t *x,
                         const int8_t *h, int16_t *out)
{
    int r;
    for (r = 0; r < p->units; ++r) {
        const int32_t a = ec_clamp16(ec_requantize(ec_dot8(x, g->in_weights + r * p->in_depth, p->in_depth)
                                                   + g->in_bias[r], g->in_mult, g->in_shift));
        const int32_t b = ec_clamp16(ec_requantize(ec_dot8(h, g->rec_weights + r * p->units, p->units)
                                                   + g->rec_bias[r], g->rec_mult, g->rec_shift));
        const int32_t sum = ec_clamp16(a + b);
        out[r] = g->tanh ? ec_tanh16(p->sigmoid, sum, 3, 0) : ec_sigmoid16(p->sigmoid, sum);
    }
}

EC_SHARED void ec_lstm(const struct ec_lstm *p, const int8_t *in, int8_t *out, int8_t *scratch)
{
    const int n = p->units;
    int16_t *forget = (int16_t *)(void *)scratch;
    int16_t *input = forget + n;
    int16_t *cell_gate = input + n;
    int16_t *output = cell_gate + n;
    int16_t *cell = output + n;
    int8_t *hidden = (int8_t *)(void *)(cell + n);
    int t, r;
    for (r = 0; r < n; ++r) {
        cell[r] = 0;
        hidden[r] = (int8_t)p->hidden_zero_point;
    }
    for (t = 0; t < p->steps; ++t) {
        const int8_t *x = in + t * p->in_depth;
        ec_lstm_gate(p, &p->gates[0], x, hidden, forget);
        ec_lstm_gate(p, &p->gates[1], x, hidden, input);
        ec_lstm_gate(p, &p->gates[2], x, hidden, cell_gate);
        for (r = 0; r < n; ++r) {
            const int32_t kept = ec_clamp16(ec_requantize((int32_t)forget[r] * cell[r], p->forget_mult,
                                                          p->forget_shift));
            const int32_t added = ec_clamp16(ec_requantize((int32_t)input[r] * cell_gate[r], p->input_mult,
                                                           p->input_shift));
            int32_t c = ec_clamp16(kept + added);
            if (p->cell_clip > 0) {
                c = c > p->cell_clip ? p->cell_clip : (c < -p->cell_clip ? -p->cell_clip : c);
            }
            cell[r] = (int16_t)c;
        }
        ec_lstm_gate(p, &p->gates[3], x, hidden, output);
        for (r = 0; r < n; ++r) {
            const int32_t tanh_cell = ec_tanh16(p->sigmoid, cell[r], p->cell_tanh_mult, p->cell_tanh_shift);
            hidden[r] = ec_clamp8(ec_requantize(tanh_cell * output[r], p->hidden_mult, p->hidden_shift)
                                  + p->hidden_zero_point, -128, 127);
        }
        ec_copy_bytes(out + t * n, hidden, n);
    }
}
