# medfuse: `make demo` fuses bundled sample pairs with the shipped weights; `make test` runs the tests.
# Both create the virtual environment .venv and install everything into it first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HAVARD ?= ../shared/data/havard
SAMPLES := src/medfuse/samples

.PHONY: install demo test weights fusion-weights reconstruction figure benchmark clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $@

demo: install
	mkdir -p out/demo
	$(BIN)/medfuse fuse $(SAMPLES)/CT-MRI/MRI/41010.png $(SAMPLES)/CT-MRI/CT/41010.png -o out/demo/mri-ct-41010.png
	$(BIN)/medfuse fuse $(SAMPLES)/PET-MRI/MRI/25015.png $(SAMPLES)/PET-MRI/PET/25015.png -o out/demo/mri-pet-25015.png
	@echo "demo results are in $(CURDIR)/out/demo/"

test: install
	$(BIN)/python -m pytest -q -rs

# Reproduce the shipped weights (about 20 minutes on 2 CPU cores; runs/dran-havard must not hold an
# earlier run), then measure them on the test split.
weights: install
	mkdir -p runs
	$(BIN)/medfuse train $(HAVARD)/CT-MRI/train $(HAVARD)/PET-MRI/train $(HAVARD)/SPECT-MRI/train \
		-o runs/dran-havard --steps 1500 --crop 96 --lr 5e-4 --val-every 250 --seed 0
	cp runs/dran-havard/weights.safetensors src/medfuse/dran/weights/dran-havard.safetensors
	$(MAKE) reconstruction

# Reproduce the shipped fusion stage (weights/MODEL_CARD.md: about 25 minutes on a CPU core;
# runs/dran-fusion-havard must not hold an earlier run): a head trained on dran-havard's frozen
# features from the three train splits, then scored on the pairs it held out.
fusion-weights: install
	mkdir -p runs
	$(BIN)/medfuse train-fusion $(HAVARD)/CT-MRI/train $(HAVARD)/PET-MRI/train $(HAVARD)/SPECT-MRI/train \
		-o runs/dran-fusion-havard --init dran-havard --seed 0 --threads 1
	cp runs/dran-fusion-havard/weights.safetensors src/medfuse/dran/weights/dran-fusion-havard.safetensors
	cp runs/dran-fusion-havard/log.json src/medfuse/dran/weights/dran-fusion-havard-log.json
	cp runs/dran-fusion-havard/loss.png src/medfuse/dran/weights/dran-fusion-havard-loss.png
	OMP_NUM_THREADS=1 $(BIN)/python benchmarks/fusion_stage.py --data $(HAVARD) --held-out

reconstruction: install
	$(BIN)/python benchmarks/reconstruction.py --data $(HAVARD)

# Every table of BENCHMARKS.md: all methods x 7 metrics on the three Havard test splits, with the
# DRAN authors' released model as one more method (fused first by benchmarks/authors_fusion.py
# from ../shared/anchors/dilran); the splits run side by side, one torch thread each (about 11
# minutes per split on 2 CPU cores); fused images are cached in out/benchmark/.
benchmark: install
	mkdir -p out/authors out/benchmark
	for set in CT-MRI PET-MRI SPECT-MRI; do \
		$(BIN)/python benchmarks/authors_fusion.py $(HAVARD)/$$set/test -o out/authors/$$set || exit 1; \
	done
	pids=""; for set in CT-MRI PET-MRI SPECT-MRI; do \
		OMP_NUM_THREADS=1 $(BIN)/medfuse benchmark $(HAVARD)/$$set/test -o out/benchmark/$$set --quiet \
			--external authors-dran-sfnn=out/authors/$$set & pids="$$pids $$!"; \
	done; status=0; for pid in $$pids; do wait $$pid || status=1; done; exit $$status

figure: install
	$(BIN)/python scripts/readme_figure.py -o docs/fusion-example.png

clean:
	rm -rf out
