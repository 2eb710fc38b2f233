# regbench: make install | test | bench | report | perf
PY := .venv/bin/python
BIN := .venv/bin
# The CIFAR-10 copy beside this checkout, when there is one; otherwise torchvision downloads it.
REGBENCH_CIFAR ?= $(firstword $(wildcard ../shared/data/cifar10-jpeg.tar.gz))
export REGBENCH_CIFAR
PRESET ?= quick
GRIDS ?= article l2 adamw l1 dropout augment patience depth train_size

.PHONY: install test bench report perf perf-save

install:
	python3 -m venv .venv
	$(PY) -m pip install --upgrade --quiet pip
	$(PY) -m pip install --quiet -e '.[dev]'

test:
	$(PY) -m pytest tests

# Every grid of bench/conf/grid/ at the chosen preset; finished cells are skipped, so this also resumes.
bench:
	@for g in $(GRIDS); do \
	  echo "== grid $$g (preset=$(PRESET))"; \
	  $(BIN)/regbench -m +grid=$$g preset=$(PRESET) || exit $$?; \
	done

report:
	$(BIN)/regbench-report --results results/runs --out results

# Per-cell differences between two result folders: make compare A=old/runs B=results/runs
.PHONY: compare
compare:
	@test -n "$(A)" -a -n "$(B)" || { echo "usage: make compare A=RESULTS_DIR B=RESULTS_DIR"; exit 2; }
	$(BIN)/regbench-report compare $(A) $(B)

# Training-speed regression check: fails when a benchmark's median is >25% slower than the baseline
# saved in benchmarks/baseline/ (pytest-benchmark keeps one folder per machine/Python kind).
PERF := $(PY) -m pytest benchmarks -p no:cacheprovider -s --benchmark-only \
	--benchmark-storage=file://benchmarks/baseline --benchmark-columns=median,iqr,rounds
perf:
	$(PERF) --benchmark-compare --benchmark-compare-fail=median:25%

# Refresh the baseline after an intended speed change, on the machine the baseline is for.
perf-save:
	rm -rf benchmarks/baseline
	$(PERF) --benchmark-save=baseline
