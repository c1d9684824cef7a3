# Two commands matter: `make demo` and `make test`. Everything else is a step of those.
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
DEMO_CFG := pipeline/configs/demo_synthetic.py

.PHONY: venv reference test test-parity demo demo-teachers bench clean-demo

$(STAMP): requirements.txt requirements-test.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch first, pinned: on these machines 2.13.0 resolves to a CPU build on disk.
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -r requirements.txt
	# test-only: moto with its dependencies, then the file --no-deps (rtmlib's opencv-contrib would
	# overwrite our opencv; requirements-test.txt)
	$(PY) -m pip install -q "$$(grep -E '^moto' requirements-test.txt)"
	$(PY) -m pip install -q --no-deps -r requirements-test.txt
	touch $(STAMP)

venv: $(STAMP)

# The mmpose reference stack, in its own venv (parity tests and benchmarks only).
reference:
	bash scripts/install_mmpose_reference.sh

# The suite; parity with mmpose from the stored evidence in tests/parity/golden (no mmpose needed).
test: venv
	$(PY) -m pytest -q -m "not parity" tests

# Live parity against mmpose itself (builds the reference environment: about 20 min the first time),
# and a check that tests/parity/golden is what mmpose computes today. These tests must run, not skip.
test-parity: venv reference
	PARITY_REQUIRED=1 $(PY) -m pytest -q -m parity tests

# The whole pipeline on the embedded synthetic default, ending with a report. It uses the shipped
# teachers in teachers/demo/ (checked against their manifest) and never trains a teacher.
demo: venv
	$(PY) cli.py demo --config $(DEMO_CFG)

# Rebuild the shipped demo teachers and the student's starting backbone from scratch (about 50 min on
# 2 CPU cores: docs/results.md).
demo-teachers: venv
	$(PY) cli.py demo-teachers --config pipeline/configs/demo_teachers.py --eval-config $(DEMO_CFG) --out teachers/demo

bench: venv reference
	$(PY) benchmarks/model_forward.py
	$(PY) benchmarks/data_views.py
	$(PY) benchmarks/cache_reads.py
	$(PY) benchmarks/train_step.py

clean-demo:
	rm -rf outputs/demo data/synthetic
