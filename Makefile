# Quick start:  make demo   |   make test
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
WARM    := $(VENV)/.kernels
KERNELS := $(wildcard mapspace/kernels.py mapspace/sampler_kernels.py cost_models/_*_kernel.py)

.PHONY: demo test lint bench bench-peers bench-tvm calibrate setup clean

setup: $(WARM)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade "pip==25.3"
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $(STAMP)

# numba kernels compiled into their cache now, not at first use (again when a kernel changes)
$(WARM): $(STAMP) $(KERNELS)
	$(BIN)/python -m compiler.warmup
	touch $(WARM)

demo: $(WARM)
	$(BIN)/mapspace evaluate --target gemmini --workload bert-base/ffn1 --mapping targets/gemmini/examples/bert_ffn1_good.yaml
	$(BIN)/mapspace explore --target gemmini --workload bert-base/ffn1 --samples 20000 --seed 0
	mkdir -p out
	$(BIN)/mapspace compile bert-base --target gemmini --seed 0 --out out/demo
	$(BIN)/python benchmarks/best_known.py --check out/demo/ops.csv --models bert-base

test: $(WARM)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_evaluate.py
	$(BIN)/python benchmarks/bench_explore.py
	$(BIN)/python benchmarks/bench_compile.py

# Our TVM CPU kernels vs numpy/OpenBLAS and MetaSchedule (64 trials, ~4 min; QUICK=1 skips it)
bench-tvm: $(STAMP)
	$(BIN)/python benchmarks/bench_tvm_cpu.py $(if $(QUICK),--quick)
	$(BIN)/python benchmarks/bench_gemmini_emit.py
	$(BIN)/python benchmarks/bench_tvm_plugin.py

# A learned CPU cost model for this machine (issue 11): measure CALIBRATE_N mappings of each
# of 4 BERT-Base (sequence 128) / ResNet-50 layers (TVM builds on every core, 5 timed runs
# each), then train; 5.3 min on the shared 2-core machine at load ~4 (11.3 min at load ~10
# with 40 mappings a layer).  Use it with --cost learned:out/cpu.skops (map/compile/emit).
CALIBRATE_N ?= 32
CALIBRATE_LAYERS ?= bert-base-s128/q-proj bert-base-s128/ffn2 resnet50/conv4_x \
	resnet50/conv5_x.reduce
calibrate: $(STAMP)
	mkdir -p out
	rm -f out/cpu_calibrate.parquet
	for w in $(CALIBRATE_LAYERS); do \
	  $(BIN)/mapspace measure --target cpu --workload $$w --n $(CALIBRATE_N) --seed 0 \
	    --repeat 5 --warmup 2 --out out/cpu_calibrate.parquet || exit 1; done
	$(BIN)/mapspace train out/cpu_calibrate.parquet --out out/cpu.skops

# ZigZag (the closest peer) in its own venv .venv-peers (it pins its own numpy/pandas);
# zigzag imports six without declaring it.
bench-peers: $(STAMP)
	test -x .venv-peers/bin/python || $(PY) -m venv .venv-peers
	.venv-peers/bin/python -m pip install -q "zigzag-dse==3.9.1" "six==1.17.0"
	$(BIN)/python benchmarks/bench_vs_zigzag.py

clean:
	rm -rf $(VENV) build *.egg-info
