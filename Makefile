# The two commands of the README. Both set everything up on a fresh machine and are idempotent.
#   make demo   the main job on the embedded synthetic KITTI world (QUICK=1 for a short run,
#               SEEDS=3 for three training seeds with mean ± spread)
#   make test   the test suite (CPU)
#   make gpu-check  on a CUDA machine: the tests marked cuda and the benchmarks -> gpu_check.json
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test venv clean-demo gpu-check

venv: $(STAMP)

$(STAMP): setup.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e ".[dev]"
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q tests

gpu-check: $(STAMP)
	$(PY) scripts/gpu_check.py --out gpu_check.json

demo: $(STAMP)
	$(PY) scripts/run_demo.py $(if $(QUICK),--quick,) $(if $(SEEDS),--seeds $(SEEDS),)

clean-demo:
	rm -rf demo_output data/synthetic_kitti
