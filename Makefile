# regbench: make install | test | bench | report | perf
PY := .venv/bin/python
BIN := .venv/bin
# The CIFAR-10 copy beside this checkout, when there is one; otherwise torchvision downloads it.
REGBENCH_CIFAR ?= $(abspath $(firstword $(wildcard ../shared/data/cifar10-jpeg.tar.gz)))
export REGBENCH_CIFAR
PRESET ?= quick
# every grid of bench/conf/grid/, the two default grids first; the CIFAR factorial belongs to bench-standard
GRIDS ?= article extended $(filter-out article extended factorial_cifar,$(basename $(notdir $(wildcard bench/conf/grid/*.yaml))))
# bench-standard: CIFAR's article grid and the sweeps its techniques are tuned on, at 10 paired seeds
STANDARD_GRIDS ?= article l2 adamw dropout augment patience

.PHONY: install test bench bench-standard report perf perf-save

install:
	python3 -m venv .venv
	$(PY) -m pip install --upgrade --quiet pip
	$(PY) -m pip install --quiet -e '.[dev]'

test:
	$(PY) -m pytest tests

# Every grid of bench/conf/grid/ at the chosen preset, as one sweep (+grid=a,b,...: one process, every cell
# checked before the first trains, one [i/N] count); finished cells are skipped, so this also resumes.
comma := ,
space := $(subst ,, )
bench:
	$(BIN)/regbench -m +grid=$(subst $(space),$(comma),$(strip $(GRIDS))) preset=$(PRESET)

# The power behind the CIFAR verdicts: the CIFAR article grid and its tuning sweeps at preset=standard (10 paired
# seeds; the quick preset's 3 are its first three and are not trained again), then the CIFAR factorial (16 cells,
# 3 seeds). Resumes like bench. Wall time on the 2-core dev CPU: see README.
bench-standard:
	$(BIN)/regbench -m +grid=$(subst $(space),$(comma),$(strip $(STANDARD_GRIDS))) task=cifar preset=standard
	$(BIN)/regbench -m +grid=factorial_cifar preset=quick

report:
	$(BIN)/regbench-report --results results/runs --out results

# Each technique's time and FLOPs per training step against none, interleaved in one process until the 95% CI is
# within 5% (or 20 s per technique): results/cost.csv and cost.json (bench/cost.py). Best on a quiet machine.
.PHONY: cost
cost:
	$(PY) -m bench.cost --out results

# Per-cell differences between two result folders: make compare A=old/runs B=results/runs
.PHONY: compare
compare:
	@test -n "$(A)" -a -n "$(B)" || { echo "usage: make compare A=RESULTS_DIR B=RESULTS_DIR"; exit 2; }
	$(BIN)/regbench-report compare $(A) $(B)

# Training-speed regression check against the latest baseline saved for this CPU model (benchmarks/baseline/<cpu>/,
# one folder per CPU; pytest-benchmark keeps every saved run there, numbered, so the history stays).
# Rule (benchmarks/drift.py): a benchmark fails when its median over >= 5 rounds, divided by the machine
# calibration timed around it (fixed matmul, copy and small-op work), is > 25% above the same ratio in the
# latest baseline: the shared 2-core dev VM's speed drifts between sessions by more than that.
CPU := $(shell (sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo 2>/dev/null | head -1 | grep . || uname -m) | tr -cs 'A-Za-z0-9' '-' | sed 's/-$$//')
PERF := $(PY) -m pytest benchmarks -p no:cacheprovider -s --benchmark-only --benchmark-min-rounds=5 \
	--benchmark-storage=file://benchmarks/baseline/$(CPU) --benchmark-columns=median,iqr,rounds
perf:
	@test -d benchmarks/baseline/$(CPU) || { echo "no speed baseline for this CPU ($(CPU)): run make perf-save first"; exit 2; }
	@mkdir -p .benchmarks
	$(PERF) --benchmark-json=.benchmarks/last-run.json
	$(PY) benchmarks/drift.py .benchmarks/last-run.json benchmarks/baseline/$(CPU)

# Save this run as the newest baseline for this CPU (earlier ones are kept: the speed history).
perf-save:
	$(PERF) --benchmark-save=$$(git rev-parse --short HEAD)
