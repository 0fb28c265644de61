# medfuse: `make demo` fuses bundled sample pairs with the shipped weights; `make test` runs the tests.
# Both create the virtual environment .venv and install everything into it first: medfuse with every
# extra and the test tools, at the exact versions of requirements/lock.txt (pyproject.toml holds the
# ranges that users get). `make dist-check` builds the wheel and sdist and tries them outside the
# repository; `make test-oldest` runs tests at the oldest versions the ranges allow.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HAVARD ?= ../shared/data/havard
SAMPLES := src/medfuse/samples
LOCK := requirements/lock.txt
OLDEST_VENV ?= out/venv-oldest

.PHONY: install demo test dist-check test-oldest weights fusion-weights reconstruction figure benchmark clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml $(LOCK)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c $(LOCK) -e '.[test]'
	touch $@

demo: install
	mkdir -p out/demo
	$(BIN)/medfuse fuse $(SAMPLES)/CT-MRI/MRI/41010.png $(SAMPLES)/CT-MRI/CT/41010.png -o out/demo/mri-ct-41010.png
	$(BIN)/medfuse fuse $(SAMPLES)/PET-MRI/MRI/25015.png $(SAMPLES)/PET-MRI/PET/25015.png -o out/demo/mri-pet-25015.png
	@echo "demo results are in $(CURDIR)/out/demo/"

test: install
	$(BIN)/python -m pytest -q -rs

# The sdist and wheel built, checked by twine, and the wheel installed alone into a fresh environment
# outside the repository, where medfuse --version, medfuse fuse on the shipped samples and import medfuse
# must work (scripts/check_dist.sh says each step; about 2 minutes, less with pip's cache warm).
dist-check:
	PYTHON=$(PYTHON) bash scripts/check_dist.sh out/dist

# The oldest versions pyproject.toml allows (requirements/oldest.txt: its lower bounds) in their own
# environment, with the core, [dicom] and [registration]: the tests of what those libraries serve, the
# metrics (scipy, scikit-image, PyWavelets), images (Pillow, tifffile, pypng), fusion and the network
# (torch, numpy, safetensors), NIfTI and DICOM reading (nibabel, pydicom and its decoders) and writing
# (highdicom). Registration (SimpleITK's range) is left out for CI's time (its tests take 2 minutes);
# the other tests need the newer extras or take long. About 1 minute on 2 cores after the first
# install (about 2 minutes).
OLDEST_TESTS := tests/test_metrics.py tests/test_io.py tests/test_io_png16.py tests/test_fusion.py \
	tests/test_volume_io.py tests/test_dicom_reading.py tests/test_dicom_derived.py
test-oldest: $(OLDEST_VENV)/.installed
	$(OLDEST_VENV)/bin/python -m pytest -q -rs -p no:cacheprovider $(OLDEST_TESTS)

$(OLDEST_VENV)/.installed: pyproject.toml requirements/oldest.txt
	rm -rf $(OLDEST_VENV)
	$(PYTHON) -m venv $(OLDEST_VENV)
	$(OLDEST_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -c requirements/oldest.txt \
		-e '.[dicom,registration]' pytest hypothesis
	touch $@

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

# The documentation site (docs/, Sphinx with MyST pages): the tools of requirements/docs.txt into .venv,
# then a build into docs/_build/html (ignored) in which every warning is an error.
.PHONY: docs
docs: install
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements/docs.txt
	$(BIN)/python -m sphinx -W --keep-going -E -b html docs docs/_build/html
	@echo "the site is in $(CURDIR)/docs/_build/html/index.html"

# Lint and types: ruff's rules and format check on the code, tests, benchmarks and scripts, and mypy on
# the package (settings in pyproject.toml), with the tools of requirements/lint.txt.
.PHONY: lint
lint: install
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements/lint.txt
	$(BIN)/ruff check src tests benchmarks scripts docs/_ext
	$(BIN)/ruff format --check src tests benchmarks scripts docs/_ext
	$(BIN)/mypy
