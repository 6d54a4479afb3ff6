# Two commands do all the setup on a fresh machine with Python 3.11:
#   make demo   builds the bundled sample (creates .venv and installs on first use)
#   make test   runs the test suite (same, plus the Debian tools the tests use)
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.edgec-installed

.PHONY: demo test lint test-slow fuzz bench system-deps clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

system-deps:
	@bash scripts/system-deps.sh

demo: $(STAMP)
	$(BIN)/edgec build samples/digits/digits.keras --target cortex-m4 \
	    --data samples/digits/digits.npz --out out/digits

test: $(STAMP) system-deps lint
	$(BIN)/python -m pytest -q --durations=10

# mypy checks the whole package; the facade and the budget gate (units, targets, runtimes, the latency
# model, measurements, budgets, edgec check) also under --strict.
STRICT := edgec/api.py edgec/units.py edgec/check/targets edgec/check/runtimes.py edgec/check/latency.py \
          edgec/check/measure.py edgec/check/budgets.py edgec/check/gate.py
MYPY := $(BIN)/mypy --follow-imports=silent --ignore-missing-imports --disable-error-code annotation-unchecked

lint: $(STAMP)
	$(BIN)/ruff check edgec tests benchmarks fuzz scripts
	$(MYPY) edgec
	$(MYPY) --strict $(STRICT)

test-slow: $(STAMP) system-deps
	$(BIN)/python -m pytest -q -m slow

# The long fuzz run recorded in the README (FUZZ_KIND: tflite, npz, h5, recipe, target, savedmodel_meta).
FUZZ_KIND ?= tflite
FUZZ_RUNS ?= 100000
fuzz: $(STAMP)
	$(BIN)/python fuzz/run.py $(FUZZ_KIND) -atheris_runs=$(FUZZ_RUNS)

clean:
	rm -rf $(VENV) out edgec_out *.egg-info

bench: $(STAMP)
	$(BIN)/python benchmarks/run.py
