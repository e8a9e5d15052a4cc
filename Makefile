# Image pipeline: `make help` lists the targets.
.DEFAULT_GOAL := help
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c

#: PYTHON: interpreter for the virtualenv (>= 3.11)
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
#: ARCH: Lambda architecture for `make package`: arm64 or x86_64
ARCH ?= arm64
#: LAMBDA_RUNTIME: Lambda runtime the package is built for
LAMBDA_RUNTIME ?= python3.12
#: TF_PLUGIN_MIRROR: provider mirror directory for terraform init (offline); none found: the registry
TF_PLUGIN_MIRROR ?= $(firstword $(wildcard /opt/tf-plugins $(HOME)/.terraform.d/plugins /usr/share/terraform/plugins /usr/local/share/terraform/plugins))
#: MOTO_PORT: local emulator port (make run)
MOTO_PORT ?= 4566
#: API_PORT: local HTTP API port (make run)
API_PORT ?= 8080
#: CHROMIUM: the Chromium the browser tests drive (Debian's chromium package; make browser installs it)
CHROMIUM ?= /usr/bin/chromium
#: UNKIND: 1 = make run's queue poller duplicates, reorders, delays and redelivers as SQS may (docs/local-stack-delivery.md)
UNKIND ?=
#: TEST_WORKERS: pytest-xdist workers for make test (0: a single process, as plain pytest)
TEST_WORKERS ?= 4
#: FAST_WORKERS: pytest-xdist workers for make test-fast (auto: one per core)
FAST_WORKERS ?= auto
PYTEST_ARGS ?=

export PYTHON TF_PLUGIN_MIRROR MOTO_PORT API_PORT ARCH LAMBDA_RUNTIME CHROMIUM TEST_WORKERS FAST_WORKERS
export TF_IN_AUTOMATION := 1
export CHECKPOINT_DISABLE := 1

.PHONY: help
help: ## show this help
	@echo "Usage: make <target>   (variables: make <target> NAME=value)"
	@echo
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN{FS=":.*?## "}{printf "  %-12s %s\n", $$1, $$2}'
	@echo
	@echo "Variables:"
	@grep -hE '^#: [A-Z_]+: ' $(MAKEFILE_LIST) | sed -E 's/^#: ([A-Z_]+): (.*)/\1\t\2/' | while IFS=$$'\t' read -r name desc; do printf "  %-18s %s (now: %s)\n" "$$name" "$$desc" "$${!name:-}"; done

$(VENV)/.installed: requirements.txt requirements-dev.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python >= 3.11 is required: make PYTHON=python3.11")'
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	@touch $@

.PHONY: venv
venv: $(VENV)/.installed ## create or refresh the virtualenv from the pinned requirements

.PHONY: test
test: $(VENV)/.installed terraform-present browser ## run the whole test suite (unit, handlers, terraform apply, local stack, browser)
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadscope --no-loadscope-reorder $(PYTEST_ARGS)

.PHONY: test-fast
test-fast: $(VENV)/.installed ## the tests that start no server, terraform or local stack (pytest -m "not slow"): the inner loop
	$(PY) -m pytest -m "not slow" -n $(FAST_WORKERS) --dist loadscope $(PYTEST_ARGS)

# Playwright drives Debian's Chromium (executable_path): it never downloads a browser of its own.
.PHONY: browser
browser: ## install Debian's chromium for the browser tests when CHROMIUM is missing
	@test -x $(CHROMIUM) || { echo "$(CHROMIUM) is missing: installing Debian's chromium package" >&2; \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } >&2 \
		|| { echo "Could not install chromium (needs root and Debian's archive): run 'apt-get install chromium', or point CHROMIUM at a Chromium binary" >&2; exit 1; }; }
	@test -x $(CHROMIUM) || { echo "$(CHROMIUM) is still missing after installing chromium: set CHROMIUM to your Chromium binary" >&2; exit 1; }

# A TF_CLI_CONFIG_FILE that names a missing file only makes terraform warn: drop it.
ifeq ($(wildcard $(TF_CLI_CONFIG_FILE)),)
unexport TF_CLI_CONFIG_FILE
endif
CHECKOV_VENV ?= .venv-checkov
LAMBDA_SOURCES := $(shell find lambda -type f \( -name '*.py' -o -name '*.json' -o -name '*.html' -o -name '*.css' -o -name '*.js' -o -name '*.svg' \) -not -path '*/__pycache__/*' | sort)

build/lambda.zip: $(LAMBDA_SOURCES) requirements.txt tools/package.py
	$(PYTHON) -m tools.package --output $@ --arch $(ARCH) --runtime $(LAMBDA_RUNTIME)

.PHONY: package
package: build/lambda.zip ## build build/lambda.zip (handlers + pinned wheels for ARCH and LAMBDA_RUNTIME, reproducible)

.PHONY: tf-init
tf-init: terraform-present ## terraform init of the root module (from TF_PLUGIN_MIRROR when there is one, else the registry)
	terraform init -input=false $(if $(TF_PLUGIN_MIRROR),-plugin-dir=$(TF_PLUGIN_MIRROR))

.PHONY: terraform-present
terraform-present:
	@command -v $${TERRAFORM:-terraform} >/dev/null || { echo "Terraform >= 1.5 is needed and not on PATH: install it from https://developer.hashicorp.com/terraform/install" >&2; exit 1; }

$(CHECKOV_VENV)/.installed: requirements-checkov.txt
	@test -x $(CHECKOV_VENV)/bin/python || $(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-checkov.txt
	@touch $@

.PHONY: lint
lint: terraform-present $(VENV)/.installed $(CHECKOV_VENV)/.installed ## terraform fmt -check and validate, ruff, checkov (zero failed checks)
	terraform fmt -check -recursive -diff
	$(PY) -m local.tf validate
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(CHECKOV_VENV)/bin/checkov --directory . --framework terraform --quiet --compact --skip-download \
		$(foreach p,$(VENV) $(CHECKOV_VENV) .venv-bench build tests .local-stack .terraform,--skip-path $(p))

.PHONY: fmt
fmt: $(VENV)/.installed ## format Terraform and Python in place
	terraform fmt -recursive
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

#: BENCH_CORPUS: a directory of your own images for make bench (empty: the fetched corpus)
BENCH_CORPUS ?=
#: BENCH_ROUNDS: timed rounds per measurement in make bench (medians are reported)
BENCH_ROUNDS ?= 3
#: BENCH_UPLOADS: concurrent uploads through the local stack in make bench (0 skips it)
BENCH_UPLOADS ?= 20
BENCH_VENV ?= .venv-bench
BENCH_PY := $(BENCH_VENV)/bin/python
export BENCH_CORPUS BENCH_ROUNDS BENCH_UPLOADS

$(BENCH_VENV)/.installed: requirements.txt requirements-dev.txt requirements-bench.txt
	@test -x $(BENCH_PY) || $(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_PY) -m pip install --quiet --disable-pip-version-check -r requirements-bench.txt
	@touch $@

bench/corpus/.fetched: bench/corpus.py | $(BENCH_VENV)/.installed
	$(BENCH_PY) -m bench.corpus bench/corpus

.PHONY: bench-corpus
bench-corpus: bench/corpus/.fetched ## fetch the benchmark photos (Debian wallpaper packages, scikit-image samples)

.PHONY: bench
bench: $(BENCH_VENV)/.installed $(if $(BENCH_CORPUS),,bench/corpus/.fetched) build/lambda.zip ## time the engine against libvips and naive Pillow; cold start, local stack, cost
	$(BENCH_PY) -m bench.run
	$(BENCH_PY) -m bench.formats

.PHONY: bench-giants
bench-giants: $(BENCH_VENV)/.installed bench/corpus/.fetched ## 100 MP JPEG, 50 MP PNG, 16000x6000 panorama: CPU, peak RSS, whether a batch fits
	$(BENCH_PY) -m bench.giants

.PHONY: bench-formats
bench-formats: $(VENV)/.installed ## CPU per rendition for JPEG, WebP and AVIF at several speeds; attention crop; animation (docs/formats.md)
	$(PY) -m bench.formats

.PHONY: run
run: terraform-present $(VENV)/.installed build/lambda.zip ## the whole pipeline on 127.0.0.1 (emulator + terraform apply + API + queue poller); Ctrl-C stops it
	$(if $(UNKIND),LOCAL_UNKIND_DELIVERY=$(UNKIND) )$(PY) -m local.run

.PHONY: run-apply
run-apply: terraform-present $(VENV)/.installed build/lambda.zip ## apply a changed LOCAL_TF_VARS to the running `make run`, keeping its data (docs/local-stack.md)
	$(PY) -m local.live_apply

#: PREFIX: make reprocess: the key prefix to reprocess (empty: originals/)
PREFIX ?=
#: ALL: make reprocess: 1 = enqueue every listed original, current or not
ALL ?=
#: FORCE: make reprocess: 1 = render every listed original again
FORCE ?=

.PHONY: reprocess
reprocess: $(VENV)/.installed ## re-enqueue stored originals whose renditions are stale, with progress (PREFIX=, ALL=1, FORCE=1; docs/reprocess.md)
	$(PY) -m tools.reprocess $(if $(PREFIX),--prefix '$(PREFIX)') $(if $(ALL),--all) $(if $(FORCE),--force)

.PHONY: demo
demo: $(VENV)/.installed ## upload a sample image through both routes of a running `make run` and print the rendition urls
	$(PY) -m local.demo

.PHONY: clean
clean: ## remove the virtualenvs, build output and local state
	rm -rf $(VENV) .venv-* build .local-stack .pytest_cache .ruff_cache
