# The two commands of the README. Each creates the virtual environment if it is missing.
VENV ?= .venv
PYTHON ?= python3
# A CPU build; on a CUDA machine pass e.g. TORCH="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128"
TORCH ?= torch==2.13.0
PY := $(VENV)/bin/python
UNIT_LOG ?= .unit-tests.log

.PHONY: demo test test-fast clean

$(VENV)/.installed: setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	# torch first and pinned, so that nothing below pulls a multi-GB CUDA build
	$(PY) -m pip install -q $(TORCH)
	$(PY) -m pip install -q -e ".[test,hf,mlflow]"
	touch $@

# The sweep's own defaults (no flags: 8 trials of hdr_patch over `caps`), with its epochs and its
# confirmation sized to run in a few minutes on 2 cores: its best against the documented default at 5
# seeds, where a paired t interval can reach a verdict (at 3 it rarely does); a sweep confirms its
# top 3 at 5 seeds by default. --mlflow: the sweep in MLflow too (mlflow ui, docs/results.md).
demo: $(VENV)/.installed
	$(VENV)/bin/losstune-sweep --epochs 6 --confirm-top 1 --confirm-seeds 5 --mlflow

# Both tiers at once: the tests that start Ray (-m integration) one after another, as each needs,
# and the unit tests beside them in a second pytest, whose report follows. The integration tests
# leave about a quarter of 2 cores idle (processes starting, runs reporting), which the unit tests
# fill (benchmarks/README.md, 2026-11-28 sixth session); torch one thread in the unit tests, so that
# the two do not fight over the cores' threads. --durations: the slowest tests of each tier, so
# that the run's time stays in view. Fails if either tier fails.
test: $(VENV)/.installed
	@OMP_NUM_THREADS=1 $(PY) -m pytest -q --durations=15 -m "not integration" > $(UNIT_LOG) 2>&1 & unit=$$!; \
	$(PY) -m pytest -q --durations=15 -m integration; integration=$$?; \
	wait $$unit; unit=$$?; echo "== the unit tests (-m 'not integration'), run beside them:"; cat $(UNIT_LOG); \
	test $$integration -eq 0 && test $$unit -eq 0

test-fast: $(VENV)/.installed  # the unit tests only: no Ray cluster started
	$(PY) -m pytest -q -m "not integration"

clean:
	rm -rf $(VENV) *.egg-info $(UNIT_LOG)
