# Sleuth: every target creates/uses a local .venv and installs what it needs, from the lock
# files in requirements/ (exact versions and sha256 hashes; `make lock` regenerates them from
# pyproject.toml's ranges, docs/dependencies.md says how and why).
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
LOCKS := requirements/tools.lock requirements/dev.lock src/sleuth/llm/openvino_export.lock
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml $(LOCKS) 2>/dev/null | sha1sum | cut -c1-12)
# torch is pinned by version, not in the hashed locks: its CPU build is a local wheel here
# (pip's find-links) or PyTorch's CPU index elsewhere, while PyPI's file of the same version is
# the CUDA build (several GB). It is installed first, without dependencies (the locks hold them).
TORCH := torch==2.13.0
# Where `make lock` finds that CPU build (a folder of wheels, or set TORCH_INDEX instead).
TORCH_FIND_LINKS ?= /opt/wheels
TORCH_INDEX ?= https://download.pytorch.org/whl/cpu
TORCH_SOURCE = $(if $(wildcard $(TORCH_FIND_LINKS)/torch-*),--find-links $(TORCH_FIND_LINKS),--index $(TORCH_INDEX))
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: install demo test bench soak lint clean prime searcher searcher-qwen lock test-latest test-lowest

$(STAMP): pyproject.toml $(LOCKS)
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --no-deps --require-hashes -r requirements/tools.lock
	$(BIN)/python -m pip install --quiet --no-deps $(TORCH)
	# Everything else, exactly as locked (uv: the same result as pip, several times faster).
	$(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps --require-hashes \
	    -r requirements/dev.lock
	$(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps --no-build-isolation -e .
	# Convert the packaged model for the default OpenVINO backend now (once per machine: the
	# exporter gets its own environment in the cache from src/sleuth/llm/openvino_export.lock,
	# ~1-3 min, then ~1.5 min to convert).
	$(BIN)/sleuth model prepare
	# ... and the demo's model: the packaged one with the shipped priming adapter (~1 min).
	$(BIN)/sleuth model prepare --model smollm2-135m-primed
	# ... and the demo's searcher (the searcher_links@3 row): the shipped searcher adapter.
	$(BIN)/sleuth model prepare --model smollm2-135m-searcher
	@rm -f $(VENV)/.installed-*
	@touch $@

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/sleuth demo

test: $(STAMP)
	$(BIN)/python -m pytest -q --durations=15

bench: $(STAMP)
	$(BIN)/python -m bench.run_all

# 10 minutes of mixed load on the retrieval server (SLEUTH_SOAK_MINUTES=N to change).
soak: $(STAMP)
	$(BIN)/python -m bench.run_all soak

lint: $(STAMP)
	$(BIN)/ruff check src tests bench

clean:
	rm -rf $(VENV) $(LATEST_VENV) .pytest_cache build *.egg-info src/*.egg-info

# Regenerate every lock from its ranges (pyproject.toml, requirements/*.in, the exporter's
# requirements file): the newest releases that fit, resolved for CPython 3.11 on x86_64 Linux.
# Review the diff, run `make test`, commit the locks with the change that needed them.
UV_COMPILE = $(BIN)/uv pip compile --quiet --generate-hashes --python-version 3.11 \
	--python-platform x86_64-manylinux_2_28 --no-emit-package torch $(TORCH_SOURCE)
lock: $(STAMP)
	$(UV_COMPILE) requirements/tools.in -o requirements/tools.lock
	$(UV_COMPILE) pyproject.toml requirements/extra.in --extra all --extra ray --extra dev \
	    --override requirements/overrides.txt -o requirements/dev.lock
	$(UV_COMPILE) src/sleuth/llm/openvino_export_requirements.txt \
	    --override requirements/exporter-overrides.txt -o src/sleuth/llm/openvino_export.lock

# Knowing when upstream breaks us: a separate environment from pyproject.toml's ranges alone
# (the newest releases that fit today; LOWEST=1 takes the lowest versions the ranges allow for
# Sleuth's direct dependencies instead), then the suite (PYTEST_ARGS=tests/test_x.py for a part).
# Never used by `make test` or CI.
LATEST_VENV := .venv-latest
RESOLUTION := $(if $(LOWEST),--resolution lowest-direct,)
test-latest: $(STAMP)
	rm -rf $(LATEST_VENV)
	$(PY) -m venv $(LATEST_VENV)
	$(LATEST_VENV)/bin/python -m pip install --quiet --no-deps $(TORCH)
	$(BIN)/uv pip compile --quiet --python-version 3.11 --python-platform x86_64-manylinux_2_28 \
	    --no-emit-package torch $(TORCH_SOURCE) $(RESOLUTION) pyproject.toml requirements/extra.in \
	    --extra all --extra dev --override requirements/overrides.txt -o $(LATEST_VENV)/resolved.txt
	$(BIN)/uv pip install --quiet --python $(LATEST_VENV)/bin/python --no-deps \
	    -r $(LATEST_VENV)/resolved.txt
	$(BIN)/uv pip install --quiet --python $(LATEST_VENV)/bin/python --no-deps \
	    --no-build-isolation -e .
	@echo "resolved from the ranges (compare with requirements/dev.lock):"
	@diff <(grep -E '^[a-z]' requirements/dev.lock | cut -d' ' -f1) \
	    <(grep -E '^[a-z]' $(LATEST_VENV)/resolved.txt | cut -d' ' -f1) || true
	$(LATEST_VENV)/bin/sleuth model prepare
	$(LATEST_VENV)/bin/sleuth model prepare --model smollm2-135m-primed
	$(LATEST_VENV)/bin/python -m pytest -q --durations=15 -p no:cacheprovider $(PYTEST_ARGS)

test-lowest:
	$(MAKE) test-latest LOWEST=1 LATEST_VENV=.venv-lowest

# Behaviour priming (issue 10): scripted episodes with the real engine on HotpotQA-1100 train+dev
# (never test), each starting from the loop's retrieval of the question (the agent_rag method),
# then LoRA SFT of the packaged SmolLM2 on CPU (~36 min on 2 cores, capped at 60; nice: the
# machine is shared). The adapter lands in runs/prime/adapter/ with the settings it was trained
# with recorded (ask / eval / demo apply them: `--model runs/prime/adapter`, eval method
# agent_rag). The shipped `smollm2-135m-primed` is this adapter: copy the folder's files into
# src/sleuth/data/adapters/smollm2-135m-primed/ to ship a rebuilt one (docs/training.md).
PRIME_DIR := runs/prime
prime: $(STAMP)
	rm -f $(PRIME_DIR)/trajectories.jsonl
	$(BIN)/sleuth synth trajectories --benchmark hotpotqa-1100:train \
	    --benchmark hotpotqa-1100:dev --out $(PRIME_DIR)/trajectories.jsonl --seed 0 --prefetch 3
	nice -n 10 $(BIN)/sleuth train sft --data $(PRIME_DIR)/trajectories.jsonl \
	    --out $(PRIME_DIR)/adapter --overwrite --lora --lora-top-layers 10 --max-steps 45 \
	    --grad-accum 8 --lr 1e-3 --max-minutes 60 --seed 0

# The shipped searcher (issue 29): searcher_links@3 episodes on HotpotQA-1100 train+dev (never
# test) played by the follow teacher (follow the question's names and [1]'s, select links' read
# by number), then LoRA SFT of the packaged SmolLM2 on CPU (~39 min on 2 cores, capped at 60).
# The adapter lands in runs/searcher-prime/adapter/ with its settings, data digest, seed and library
# versions in sleuth_training.json. The shipped `smollm2-135m-searcher` is this adapter: copy
# its adapter_* files and sleuth_training.json into src/sleuth/data/adapters/smollm2-135m-searcher/.
SEARCHER_DIR := runs/searcher-prime
searcher: $(STAMP)
	rm -f $(SEARCHER_DIR)/episodes.jsonl
	$(BIN)/sleuth synth trajectories --benchmark hotpotqa-1100:train \
	    --benchmark hotpotqa-1100:dev --out $(SEARCHER_DIR)/episodes.jsonl --seed 0 \
	    --searcher 3 --teacher follow --think-share 0.5
	nice -n 10 $(BIN)/sleuth train sft --data $(SEARCHER_DIR)/episodes.jsonl \
	    --out $(SEARCHER_DIR)/adapter --overwrite --lora --lora-top-layers 10 --max-steps 42 \
	    --grad-accum 8 --lr 1e-3 --max-length 2048 --max-minutes 60 --seed 0

# The same episodes on Qwen2.5-Coder-0.5B (issue 29's second trained searcher; not shipped: its
# base is an optional 491 MB download): installs the extra, 24 LoRA steps of 8 (0.58 epoch, ~34
# min on 2 cores when nothing else runs). Measured with the 1.5B reader by
# `sleuth eval run ... --model qwen2.5-coder-1.5b --searcher runs/searcher-qwen/adapter
# --methods rag@3,searcher_links@3` (docs/evaluation.md, "The same searcher on Qwen2.5-Coder-0.5B").
SEARCHER_QWEN_DIR := runs/searcher-qwen
searcher-qwen: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[qwen-0-5b]'
	rm -f $(SEARCHER_QWEN_DIR)/episodes.jsonl
	$(BIN)/sleuth synth trajectories --benchmark hotpotqa-1100:train \
	    --benchmark hotpotqa-1100:dev --out $(SEARCHER_QWEN_DIR)/episodes.jsonl --seed 0 \
	    --searcher 3 --teacher follow --think-share 0.5
	nice -n 10 $(BIN)/sleuth train sft --model qwen2.5-coder-0.5b \
	    --data $(SEARCHER_QWEN_DIR)/episodes.jsonl --out $(SEARCHER_QWEN_DIR)/adapter --overwrite \
	    --lora --lora-top-layers 8 --max-steps 24 --grad-accum 8 --lr 1e-3 --max-length 2048 \
	    --max-minutes 85 --seed 0
