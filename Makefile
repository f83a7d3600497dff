# Quick start:  make demo   |   make test
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed

.PHONY: demo test lint bench setup clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade "pip==25.3"
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/mapspace evaluate --target gemmini --workload bert-base/ffn1 --mapping targets/gemmini/examples/bert_ffn1_good.yaml
	$(BIN)/mapspace explore --target gemmini --workload bert-base/ffn1 --samples 20000 --seed 0

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_evaluate.py

clean:
	rm -rf $(VENV) build *.egg-info
