# Subscriber Feedback Loop. Every target sets up what it needs from the repo's own files:
#   .venv         from requirements-dev.lock (exact versions, hashes checked)
#   node_modules  the AWS CDK CLI from package-lock.json (npm ci)
#   Node.js       the .nvmrc version: the machine's when its major version matches, else a
#                 repo-local copy from the npm registry (node-<os>-<arch>) under .tools/
# docs/TOOLING.md explains each piece; .ci/run and .github/workflows/ci.yml run CI_TARGETS.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
CLI_STAMP := node_modules/.package-lock.json
STACK := SubscriberFeedbackLoop
TEMPLATE := cdk.out/$(STACK).template.json
CDK := npx --no-install cdk
CDK_ARGS ?=
CI_TARGETS := lint synth-check test

NODE_VERSION := $(shell cat .nvmrc)
NODE_MAJOR := $(firstword $(subst ., ,$(NODE_VERSION)))
SYSTEM_NODE_MAJOR := $(shell node -p 'process.versions.node.split(".")[0]' 2>/dev/null)
ifeq ($(SYSTEM_NODE_MAJOR),$(NODE_MAJOR))
NODE := $(shell command -v node)
else
LOCAL_NODE := .tools/node
NODE := $(LOCAL_NODE)/node_modules/.bin/node
export PATH := $(CURDIR)/$(LOCAL_NODE)/node_modules/.bin:$(PATH)
endif

# mypy: --strict on the handlers and domain code, the default checks elsewhere. A directory
# in MYPY_PENDING is checked and its error count printed, but not enforced yet (issue 11:
# being rewritten); once it is clean, lint fails until it is removed from the list.
MYPY_STRICT := lambdas
MYPY_CHECKED := stacks ops simulator
MYPY_PENDING :=

export AWS_DEFAULT_REGION ?= eu-west-2
export CDK_DEFAULT_REGION ?= eu-west-2

.PHONY: setup demo test test-fast synth synth-check diff bootstrap deploy lint format bench cost \
	cost-inputs whatif pr lock clean distclean

setup: $(STAMP) $(CLI_STAMP)

$(STAMP): requirements.lock requirements-dev.lock | $(NODE)
	$(PYTHON) -m venv $(VENV)
	@# --no-compile: byte-compile on first import only what is used (halves the install time)
	$(PY) -m pip install --quiet --require-hashes --no-deps --no-compile -r requirements-dev.lock
	touch $(STAMP)

$(CLI_STAMP): package.json package-lock.json | $(NODE)
	npm ci --no-audit --no-fund

NODE_NEEDED := Node.js $(NODE_VERSION) (.nvmrc) is needed
.tools/node/node_modules/.bin/node: .nvmrc
	@command -v npm >/dev/null || { echo "$(NODE_NEEDED); no npm to fetch it: install it" >&2; exit 1; }
	@os=$$(uname -s | tr '[:upper:]' '[:lower:]'); arch=$$(uname -m); \
	case $$arch in x86_64) arch=x64 ;; aarch64) arch=arm64 ;; esac; \
	echo "$(NODE_NEEDED) (this machine: $(or $(SYSTEM_NODE_MAJOR),none)); into .tools/node"; \
	npm install --prefix .tools/node --no-save --no-package-lock --no-audit --no-fund \
		"node-$$os-$$arch@$(NODE_VERSION)" || { echo "$(NODE_NEEDED); the npm registry has \
	no build for $$os-$$arch: install it (e.g. nvm install)" >&2; exit 1; }
	@touch $@

demo: $(STAMP)
	$(PY) -m simulator run --out out
	@echo "Open out/report.html in a browser (summary: out/summary.json, calls: out/calls.jsonl)."

test: $(STAMP) $(CLI_STAMP)
	$(PY) -m pytest -n 2 --dist loadgroup

test-fast: $(STAMP)
	$(PY) -m pytest -n 2 --dist loadgroup -m "not slow"

# Synth through the pinned CLI (the one `make deploy` uses): offline, no AWS credentials;
# cdk-nag runs inside synth and fails it on any unacknowledged finding.
synth: $(STAMP) $(CLI_STAMP)
	@echo "AWS CDK CLI $$($(CDK) --version) on Node.js $$(node --version)"
	$(CDK) synth --quiet $(CDK_ARGS)
	@echo "$(TEMPLATE) written (cdk-nag: no unacknowledged findings)"

# What CI checks on the synthesized template besides cdk-nag.
synth-check: synth
	$(VENV)/bin/cfn-lint --regions eu-west-2 us-east-1 -- $(TEMPLATE)
	$(PY) tests/infra/iam_catalogue.py $(TEMPLATE)

diff: $(STAMP) $(CLI_STAMP)
	@echo "AWS CDK CLI $$($(CDK) --version)"
	$(CDK) diff --all $(CDK_ARGS)

bootstrap: $(STAMP) $(CLI_STAMP)
	@echo "AWS CDK CLI $$($(CDK) --version)"
	$(CDK) bootstrap $(CDK_ARGS)

deploy: $(STAMP) $(CLI_STAMP)
	@echo "AWS CDK CLI $$($(CDK) --version)"
	$(CDK) deploy --all $(CDK_ARGS)

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m json.tool connect_flows/Subscriber_engagement.json >/dev/null
	@strict="$(filter-out $(MYPY_PENDING),$(MYPY_STRICT))"; \
	if [ -n "$$strict" ]; then set -x; $(PY) -m mypy --strict $$strict; fi
	@checked="$(filter-out $(MYPY_PENDING),$(MYPY_CHECKED))"; \
	if [ -n "$$checked" ]; then set -x; $(PY) -m mypy $$checked; fi
	@for dir in $(MYPY_PENDING); do \
		flags=$$(case " $(MYPY_STRICT) " in *" $$dir "*) echo --strict ;; esac); \
		if report=$$($(PY) -m mypy $$flags $$dir 2>&1); then \
			echo "mypy $${flags:+$$flags }$$dir is clean: remove $$dir from MYPY_PENDING in the Makefile" \
				"so it stays enforced" >&2; exit 1; \
		fi; \
		echo "mypy $${flags:+$$flags }$$dir: $$(grep -c ': error:' <<<"$$report") errors" \
			"(pending, not enforced yet: issue 11)"; \
	done

format: $(STAMP)
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

bench: $(STAMP)
	$(PY) -m simulator bench
	$(PY) -m simulator bench --dense --out out/dense

# The monthly estimate at 1M and 10M subscribers (README "Cost"); cost.json in out/cost-*.
cost: $(STAMP)
	$(PY) -m simulator cost --subscribers 1000000 --out out/cost-1m
	$(PY) -m simulator cost --subscribers 10000000 --out out/cost-10m

# What-if on a generated export of ~10M probe records (50,000 subscribers, 28 days), made once:
# make whatif WHATIF_EXPORT=path/to/export WHATIF_CONFIGS="--config a.json --config b.json"
WHATIF_EXPORT ?= out/probes-10m.parquet
WHATIF_CONFIGS ?= --config docs/examples/whatif-deployed.json --config docs/examples/whatif-stricter.json
whatif: $(STAMP)
	@test -e $(WHATIF_EXPORT) || $(PY) -m simulator export --subscribers 50000 --days 28 --out $(WHATIF_EXPORT)
	$(PY) -m simulator whatif --probe-export $(WHATIF_EXPORT) $(WHATIF_CONFIGS) --out out/whatif

# Re-measure simulator/cost_inputs.json: the dense bench, then a twin day at 50 records per
# subscriber-day (~10 min), then the measurement.
cost-inputs: $(STAMP)
	$(PY) -m simulator bench --dense --out out/dense
	$(PY) -m simulator bench --write-day out/day50-scenario.json --subscribers 400 --records-per-subscriber-day 50
	$(PY) -m simulator run --scenario out/day50-scenario.json --out out/day50
	$(PY) -m simulator cost --measure out/day50 --scenario out/day50-scenario.json --dense out/dense/dense.json

# Everything CI runs, in the same order.
pr: $(CI_TARGETS)

# Re-resolve the locks from requirements*.txt (needs PyPI; commit the result).
lock: $(STAMP)
	$(PY) -m piptools compile --quiet --generate-hashes --allow-unsafe --strip-extras \
		--no-emit-index-url -o requirements.lock requirements.txt
	$(PY) -m piptools compile --quiet --generate-hashes --allow-unsafe --strip-extras \
		--no-emit-index-url -o requirements-dev.lock requirements-dev.txt

clean:
	rm -rf cdk.out out .pytest_cache .ruff_cache .mypy_cache

distclean: clean
	rm -rf $(VENV) node_modules .tools
