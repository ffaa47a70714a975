# SeeThroughNet: set-up, main job and tests.  `make help` lists the targets.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.seethroughnet-installed
DEMO_CONFIG ?= projects/SeeThroughNet/configs/Cityscapes-Synthetic/seethroughnet_W18small_demo.yaml
DEMO_OUTPUT ?= output/demo
# the demo's own dataset root, so that a real Cityscapes under $$DETECTRON2_DATASETS is never touched
DEMO_DATASETS ?= datasets/synthetic
# Route B: upstream detectron2 main, built with its compiled ops from the snapshot in ../shared/peers
VENV_UPSTREAM ?= .venv-upstream
PY_UPSTREAM := $(VENV_UPSTREAM)/bin/python
UPSTREAM_TARBALL ?= $(firstword $(wildcard ../shared/peers/detectron2-upstream/detectron2-*.tar.gz))
STAMP_UPSTREAM := $(VENV_UPSTREAM)/.seethroughnet-installed

.PHONY: help install demo lint test test-upstream test-mmseg gpu-check clean-venv

help:
	@echo "make install  - create $(VENV) with pinned torch/torchvision, detectron2 (patched v0.6) and this project (idempotent)"
	@echo "make demo     - install, generate the embedded synthetic Cityscapes data, train, evaluate and export (main job)"
	@echo "make lint     - ruff format --check and ruff check (100 columns; config in pyproject.toml)"
	@echo "make test     - install, lint and run the test suite"
	@echo "make test-upstream - the same suite on upstream detectron2 main built from ../shared/peers (own venv $(VENV_UPSTREAM))"
	@echo "make test-mmseg - the MMSegmentation equivalence tier (tests/mmseg) in its own venv $(VENV_MMSEG)"
	@echo "make gpu-check - CUDA checks and paper-size timings/memory on a GPU machine -> docs/gpu_results.md"

install: $(STAMP)

# Re-runs only when the pinned requirements, the project metadata or the detectron2 patch change.
$(STAMP): requirements.txt pyproject.toml tools/install_detectron2.py $(wildcard tools/detectron2/*.patch)
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip "setuptools>=77" wheel
	$(PY) -m pip install --quiet --no-compile -r requirements.txt
	@# byte-compile what pip installed on every core (pip compiles file by file on one: 69 s -> 18 s
	@# here); like pip, skip the few files that are not Python 3 (their errors are not shown)
	$(PY) -m compileall -q -j 0 "$$($(PY) -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")" > /dev/null || true
	$(PY) tools/install_detectron2.py
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	$(PY) -c "import torch, torchvision, detectron2.modeling, detectron2.evaluation, seethroughnet; print('installed: torch', torch.__version__, '| torchvision', torchvision.__version__, '| detectron2', detectron2.__version__)"
	@touch $@

demo: install
	DETECTRON2_DATASETS=$(DEMO_DATASETS) $(PY) datasets/prepare_synthetic_cityscapes.py
	DETECTRON2_DATASETS=$(DEMO_DATASETS) $(PY) tools/run_demo.py --config-file $(DEMO_CONFIG) --output $(DEMO_OUTPUT)

lint: install
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .

# Two processes (pytest-xdist), each test file in one of them (its module fixtures and order kept).
test: install lint
	$(PY) -m pytest tests -q --ignore=tests/mmseg --durations=15 -n 2 --dist loadfile

# Upstream main imports pkg_resources in detectron2.model_zoo: setuptools < 81 still ships it
# (>= 77 for this project's pyproject license field). Cityscapes loading/evaluation needs no change:
# the project's Cityscapes loader and evaluator modules alias upstream's internal cityscapesscripts
# path (seethroughnet/cityscapes_alias.py).
# UPSTREAM_SHARE_PACKAGES=1 (default): .venv-upstream sees route A's installed packages through a
# .pth file (appended after its own site-packages, so its own detectron2 and setuptools win) instead
# of a second 5.5 GB copy of the same pinned torch/torchvision; pip reports them as satisfied.
# UPSTREAM_SHARE_PACKAGES=0: an independent copy, exactly the README's commands.
UPSTREAM_SHARE_PACKAGES ?= 1
ifeq ($(UPSTREAM_SHARE_PACKAGES),1)
UPSTREAM_PREREQ := $(STAMP)
endif
$(STAMP_UPSTREAM): requirements.txt pyproject.toml $(UPSTREAM_PREREQ)
	@test -n "$(UPSTREAM_TARBALL)" || { echo "no upstream detectron2 snapshot: set UPSTREAM_TARBALL=/path/to/detectron2-<commit>.tar.gz"; exit 2; }
	@test -x $(PY_UPSTREAM) || $(PYTHON) -m venv $(VENV_UPSTREAM)
	@if [ "$(UPSTREAM_SHARE_PACKAGES)" = 1 ]; then \
	  $(PY) -c "import sysconfig; print(sysconfig.get_paths()['purelib'])" > "$$($(PY_UPSTREAM) -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")/_route_a_packages.pth"; \
	  echo "$(VENV_UPSTREAM) shares route A's packages from $$(cat $(VENV_UPSTREAM)/lib/python*/site-packages/_route_a_packages.pth)"; \
	fi
	$(PY_UPSTREAM) -m pip install --quiet --upgrade pip "setuptools>=77,<81" wheel
	$(PY_UPSTREAM) -m pip install --quiet -r requirements.txt
	rm -rf $(VENV_UPSTREAM)/src && mkdir -p $(VENV_UPSTREAM)/src && tar -xzf $(UPSTREAM_TARBALL) -C $(VENV_UPSTREAM)/src
	$(PY_UPSTREAM) -m pip install --quiet --no-build-isolation $(VENV_UPSTREAM)/src/detectron2-*
	$(PY_UPSTREAM) -m pip install --quiet --no-deps --no-build-isolation -e .
	$(PY_UPSTREAM) -c "from detectron2 import _C, model_zoo; import detectron2, seethroughnet; print('upstream route: detectron2', detectron2.__version__, 'from', detectron2.__file__)"
	@touch $@

# Route B runs what can differ between detectron2 installs (tests/route_selection.py): the files of
# ROUTE_B_FILES whole, the first fast test of every other file that reaches detectron2, nothing of
# the files whose whole (static) import graph holds no detectron2 (the same code on every install,
# already run by `make test`), nor REPRODUCE.md's smoke runs (marker reproduce). Two processes
# (pytest-xdist), each test file in one of them (its module fixtures and order kept).
test-upstream: $(STAMP_UPSTREAM)
	SEETHROUGHNET_ROUTE_DEPENDENT_ONLY=1 $(PY_UPSTREAM) -m pytest tests -q -m "not reproduce" --ignore=tests/mmseg --durations=15 -n 2 --dist loadfile

# The MMSegmentation equivalence tier (tests/mmseg): MMSegmentation 1.2.2 itself, run side by side
# with the project's Table 1 models, losses and pipelines. Its own venv shares route A's packages (as
# route B does) and adds requirements-mmseg.txt; mmcv-lite has no compiled ops, so the tests register
# a stub `mmcv._ext` before importing mmcv.ops (tests/mmseg/mmseg_reference.py).
VENV_MMSEG ?= .venv-mmseg
PY_MMSEG := $(VENV_MMSEG)/bin/python
STAMP_MMSEG := $(VENV_MMSEG)/.seethroughnet-installed
$(STAMP_MMSEG): requirements-mmseg.txt pyproject.toml $(STAMP)
	@test -x $(PY_MMSEG) || $(PYTHON) -m venv $(VENV_MMSEG)
	$(PY) -c "import sysconfig; print(sysconfig.get_paths()['purelib'])" > "$$($(PY_MMSEG) -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")/_route_a_packages.pth"
	$(PY_MMSEG) -m pip install --quiet --upgrade pip "setuptools>=77" wheel
	$(PY_MMSEG) -m pip install --quiet -r requirements-mmseg.txt
	$(PY_MMSEG) -m pip install --quiet --no-deps --no-build-isolation -e .
	$(PY_MMSEG) -c "import mmseg, mmengine, seethroughnet, detectron2; print('mmseg tier: mmsegmentation', mmseg.__version__, '| mmengine', mmengine.__version__)"
	@touch $@

# Two processes, the tests spread one by one (--dist load: one file holds most of the tier's time).
test-mmseg: $(STAMP_MMSEG)
	SEETHROUGHNET_REQUIRE_MMSEG=1 $(PY_MMSEG) -m pytest tests/mmseg -q --durations=10 -n 2 --dist load

gpu-check: install
	$(PY) tools/gpu_check.py --output docs/gpu_results.md

clean-venv:
	rm -rf $(VENV)
