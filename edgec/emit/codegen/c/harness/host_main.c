/* Host harness for generated code: int8 inputs on stdin, one after another,
 * int8 outputs on stdout. Built by edgec for bit-exact verification. */
#include <stdio.h>
#include <stdint.h>

#include MODEL_HEADER

int main(void)
{
    static int8_t in[INPUT_SIZE];
    static int8_t out[OUTPUT_SIZE];
    while (fread(in, 1, sizeof in, stdin) == sizeof in) {
        INFER(in, out);
        if (fwrite(out, 1, sizeof out, stdout) != sizeof out) {
            return 1;
        }
    }
    return 0;
}
