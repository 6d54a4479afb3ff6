"""Generated C: valid identifiers, 16-byte alignment, compiles and links as C and C++."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from conftest import DATA, have
from edgec import __version__
from edgec.emit import c_array
from edgec.load.tflite_file import Op, Tensor, TFLiteModel
from edgec.runtime.micro import Arena

needs_cc = pytest.mark.skipif(not have("gcc", "g++", "readelf"),
                              reason="gcc/g++/readelf missing: run `make system-deps`")

C_MAIN = r"""
#include <stdint.h>
#include <stdio.h>
#include "NAME_model_data.h"
#include "NAME_model_settings.h"
int main(void) {
  unsigned long sum = 0; unsigned int i;
  int in_shape[] = MACRO_INPUT_SHAPE_INIT;
  for (i = 0; i < NAME_model_data_len; ++i) sum += NAME_model_data[i];
  printf("%u %lu %lu %d %d\n", NAME_model_data_len, sum,
         (unsigned long)((uintptr_t)NAME_model_data % 16u), MACRO_TENSOR_ARENA_SIZE, in_shape[1]);
  return MACRO_MODEL_DATA_LEN == NAME_model_data_len ? 0 : 1;
}
"""


@pytest.mark.parametrize("name, expected", [
    ("digits", "digits"),
    ("my model-v2.1", "my_model_v2_1"),
    ("3layers", "m_3layers"),
    ("int", "m_int"),
    ("class", "m_class"),
    ("__reserved__name", "reserved_name"),
    ("ünïcödé", "n_c_d"),
    ("", "model"),
    ("---", "model"),
])
def test_c_identifier(name, expected):
    ident = c_array.c_identifier(name)
    assert ident == expected
    assert re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", ident) and "__" not in ident


@pytest.mark.parametrize("op, method", [("CONV_2D", "AddConv2D"), ("DEPTHWISE_CONV_2D", "AddDepthwiseConv2D"),
                                        ("FULLY_CONNECTED", "AddFullyConnected"), ("RELU6", "AddRelu6"),
                                        ("AVERAGE_POOL_2D", "AddAveragePool2D"), ("BATCH_MATMUL", "AddBatchMatMul")])
def test_resolver_method_names_match_tflite_micro(op, method):
    assert c_array.resolver_method(op) == method


def _write(tmp: Path, data: bytes, tfl, ident: str) -> None:
    files = c_array.model_data_files(data, ident, "weird */ name.keras")
    files.update(c_array.settings_header(tfl, Arena(1000, 600, 400, 1000), ident, "weird */ name.keras"))
    for name, body in files.items():
        (tmp / name).write_bytes(body)


def _compile_and_run(tmp: Path, ident: str, data: bytes, main_lang: str, data_lang: str) -> str:
    main = C_MAIN.replace("NAME", ident).replace("MACRO", ident.upper())
    main_file = tmp / ("main.c" if main_lang == "c" else "main.cpp")
    main_file.write_text(main)
    cc = {"c": ["gcc", "-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic"],
          "c++": ["g++", "-std=c++11", "-Wall", "-Wextra", "-Werror", "-pedantic"]}
    objs = []
    for src, lang in ((tmp / f"{ident}_model_data.c", data_lang), (main_file, main_lang)):
        obj = tmp / f"{src.stem}.{lang.replace('+', 'p')}.o"
        lang_flag = ["-x", "c++"] if lang == "c++" else ["-x", "c"]
        subprocess.run(cc[lang] + ["-c", *lang_flag, str(src), "-I", str(tmp), "-o", str(obj)],
                       check=True, capture_output=True, text=True)
        objs.append(obj)
    exe = tmp / f"prog_{main_lang}_{data_lang}".replace("+", "p")
    linker = "g++" if "c++" in (main_lang, data_lang) else "gcc"
    subprocess.run([linker, *map(str, objs), "-o", str(exe)], check=True, capture_output=True, text=True)
    return subprocess.run([str(exe)], check=True, capture_output=True, text=True).stdout.split()


@needs_cc
@pytest.mark.parametrize("main_lang, data_lang", [("c", "c"), ("c++", "c++"), ("c", "c++"), ("c++", "c")])
def test_compiles_and_links_in_c_and_cpp(tmp_path, tiny_tflite, main_lang, data_lang):
    from edgec.load.tflite_file import read_tflite

    ident = c_array.c_identifier("tiny model")
    _write(tmp_path, tiny_tflite, read_tflite(tiny_tflite), ident)
    length, checksum, misalign, arena, dim1 = _compile_and_run(tmp_path, ident, tiny_tflite, main_lang, data_lang)
    assert int(length) == len(tiny_tflite)
    assert int(checksum) == sum(tiny_tflite)  # the array holds exactly the flatbuffer bytes
    assert int(misalign) == 0
    assert int(arena) == 1008 and int(dim1) == 8  # arena rounded up to 16 bytes


@needs_cc
@pytest.mark.parametrize("lang", ["c", "c++"])
def test_array_symbol_is_16_byte_aligned_in_the_object_file(tmp_path, tiny_tflite, lang):
    from edgec.load.tflite_file import read_tflite

    _write(tmp_path, tiny_tflite, read_tflite(tiny_tflite), "tiny")
    obj = tmp_path / "d.o"
    compiler = ["gcc", "-std=c99", "-x", "c"] if lang == "c" else ["g++", "-std=c++11", "-x", "c++"]
    subprocess.run(compiler + ["-fdata-sections", "-c", str(tmp_path / "tiny_model_data.c"), "-I", str(tmp_path),
                               "-o", str(obj)], check=True, capture_output=True)
    sections = subprocess.run(["readelf", "-SW", str(obj)], check=True, capture_output=True, text=True).stdout
    line = next(ln for ln in sections.splitlines() if "tiny_model_data" in ln and "_len" not in ln)
    assert int(line.split()[-1]) >= 16, line  # the Al column of the array's own section


def test_settings_header_golden():
    """The settings header people read, from a fixed model description (no TensorFlow)."""
    t_in = Tensor(0, "input", (1, 49, 10, 1), "int8", (0.5847029089927673,), (83,), False)
    t_w = Tensor(1, "w", (12, 490), "int8", (0.01,), (0,), True)
    t_out = Tensor(2, "out", (1, 12), "int8", (0.00390625,), (-128,), False)
    ops = (Op(0, "FULLY_CONNECTED", (0, 1), (2,), 5880, 5880, {}), Op(1, "SOFTMAX", (2,), (2,), 0, 0, {}))
    tfl = TFLiteModel(1234, (t_in, t_w, t_out), ops, (0,), (2,))
    got = c_array.settings_header(tfl, Arena(24272, 16000, 8272, 24272), "kws", "kws.keras")["kws_model_settings.h"]
    golden = DATA / "golden" / "kws_model_settings.h"
    got = got.decode().replace(__version__, "VERSION")
    assert got == golden.read_text(), "regenerate tests/data/golden with care if the change is intended"


# The declarations of TFLite-Micro a firmware uses, with TFLite-Micro's signatures (micro_mutable_op_resolver.h,
# micro_interpreter.h): each Add...() takes a registration defaulting to the generic kernel and fails when the
# resolver is full. The stub records which registration each call passed.
TFLM_STUB = r"""
#include <stddef.h>
#include <stdint.h>
typedef enum TfLiteStatus { kTfLiteOk = 0, kTfLiteError = 1 } TfLiteStatus;
struct TFLMRegistration { const char* name; };
namespace tflite {
#define STUB_KERNEL(OP) \
  inline TFLMRegistration Register_##OP() { TFLMRegistration r = {#OP}; return r; } \
  inline TFLMRegistration Register_##OP##_INT8() { TFLMRegistration r = {#OP "_INT8"}; return r; }
STUB_KERNEL(CONV_2D) STUB_KERNEL(DEPTHWISE_CONV_2D) STUB_KERNEL(ADD) STUB_KERNEL(MAX_POOL_2D)
STUB_KERNEL(FULLY_CONNECTED) STUB_KERNEL(SOFTMAX)
inline TFLMRegistration Register_RESHAPE() { TFLMRegistration r = {"RESHAPE"}; return r; }
class MicroOpResolver { public: virtual ~MicroOpResolver() {} };
template <unsigned int tOpCount>
class MicroMutableOpResolver : public MicroOpResolver {
 public:
  const char* registered[tOpCount + 1];
  unsigned int count = 0;
  TfLiteStatus AddConv2D(const TFLMRegistration& registration = Register_CONV_2D()) { return Add(registration); }
  TfLiteStatus AddDepthwiseConv2D(const TFLMRegistration& registration = Register_DEPTHWISE_CONV_2D()) {
    return Add(registration);
  }
  TfLiteStatus AddAdd(const TFLMRegistration& registration = Register_ADD()) { return Add(registration); }
  TfLiteStatus AddMaxPool2D(const TFLMRegistration& registration = Register_MAX_POOL_2D()) { return Add(registration); }
  TfLiteStatus AddReshape(const TFLMRegistration& registration = Register_RESHAPE()) { return Add(registration); }
  TfLiteStatus AddFullyConnected(const TFLMRegistration& registration = Register_FULLY_CONNECTED()) {
    return Add(registration);
  }
  TfLiteStatus AddSoftmax(const TFLMRegistration& registration = Register_SOFTMAX()) { return Add(registration); }
 private:
  TfLiteStatus Add(const TFLMRegistration& r) {
    if (count >= tOpCount) return kTfLiteError;
    registered[count++] = r.name;
    return kTfLiteOk;
  }
};
struct Model {};
inline const Model* GetModel(const void*) { static Model m; return &m; }
class MicroInterpreter {
 public:
  MicroInterpreter(const Model*, const MicroOpResolver&, uint8_t*, size_t) {}
  TfLiteStatus AllocateTensors() { return kTfLiteOk; }
};
}  // namespace tflite
"""

FIRMWARE_MAIN = r"""
#include <stdio.h>
int main() {
  if (!kws_setup()) return 1;
  tflite::MicroMutableOpResolver<KWS_OP_KINDS> all;
  if (KWS_REGISTER_OPS(all) != kTfLiteOk) return 2;
  for (unsigned int i = 0; i < all.count; ++i) printf("%s\n", all.registered[i]);
  tflite::MicroMutableOpResolver<KWS_OP_KINDS - 1> full;  /* the last registration fails */
  if (KWS_REGISTER_OPS(full) == kTfLiteOk) return 3;
  else printf("failed after %u\n", full.count);
  return KWS_INFER_INPUT_SIZE == KWS_INPUT_SIZE ? 0 : 4;
}
"""


def _readme_snippet() -> str:
    text = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    block = text.split("<!-- firmware-snippet -->", 1)[1].split("<!-- /firmware-snippet -->", 1)[0]
    return block.split("```cpp", 1)[1].split("```", 1)[0]


@needs_cc
def test_the_readme_firmware_compiles_with_both_headers_and_registers_int8_kernels(tmp_path, tiny_tflite):
    """Both headers in one C++ file under -Wall -Wextra -Werror -pedantic, REGISTER_OPS under `if`, against a
    resolver with TFLite-Micro's signatures: the int8-only kernels are registered and a failing registration
    stops the chain with kTfLiteError."""
    from edgec.emit.codegen import generate
    from edgec.load.tflite_file import read_tflite

    tfl = read_tflite(tiny_tflite)
    _write(tmp_path, tiny_tflite, tfl, "kws")
    for name, body in generate(tiny_tflite, tfl, "kws").files.items():
        (tmp_path / name).write_text(body)
    micro = tmp_path / "tensorflow" / "lite" / "micro"
    micro.mkdir(parents=True)
    (micro / "micro_mutable_op_resolver.h").write_text("#pragma once\n" + TFLM_STUB)
    (micro / "micro_interpreter.h").write_text('#pragma once\n#include "micro_mutable_op_resolver.h"\n')
    (tmp_path / "firmware.cpp").write_text(_readme_snippet() + FIRMWARE_MAIN)
    flags = ["-Wall", "-Wextra", "-Werror", "-pedantic", "-I", str(tmp_path)]
    subprocess.run(["gcc", "-std=c99", *flags, "-c", str(tmp_path / "kws_model_data.c"), "-o",
                    str(tmp_path / "data.o")], check=True, capture_output=True, text=True)
    built = subprocess.run(["g++", "-std=c++11", *flags, str(tmp_path / "firmware.cpp"), str(tmp_path / "data.o"),
                            "-o", str(tmp_path / "firmware")], capture_output=True, text=True)
    assert built.returncode == 0, built.stderr
    out = subprocess.run([str(tmp_path / "firmware")], capture_output=True, text=True)
    assert out.returncode == 0, out
    lines = out.stdout.split("\n")
    assert lines[:len(tfl.op_counts)] == [op if op == "RESHAPE" else f"{op}_INT8" for op in tfl.op_counts]
    assert lines[len(tfl.op_counts)] == f"failed after {len(tfl.op_counts) - 1}"
