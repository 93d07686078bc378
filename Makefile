# Subscriber Feedback Loop – every target sets up what it needs (.venv from the repo's own files).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION := 1
export AWS_DEFAULT_REGION ?= eu-west-2
export CDK_DEFAULT_REGION ?= eu-west-2

.PHONY: setup demo test test-fast synth lint format bench whatif deploy pr clean

setup: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m simulator run --out out
	@echo "Open out/report.html in a browser (summary: out/summary.json, calls: out/calls.jsonl)."

test: $(STAMP)
	$(PY) -m pytest -n 2 --dist loadgroup

synth: $(STAMP)
	CDK_OUTDIR=cdk.out $(PY) app.py
	@echo "cdk.out/SubscriberFeedbackLoop.template.json written (cdk-nag: no unacknowledged findings)"

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy lambdas/feedback_loop
	$(PY) -m json.tool connect_flows/Subscriber_engagement.json >/dev/null

format: $(STAMP)
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

bench: $(STAMP)
	$(PY) -m simulator bench

# What-if on a generated export of ~10M probe records (50,000 subscribers, 28 days), made once:
# make whatif WHATIF_EXPORT=path/to/export WHATIF_CONFIGS="--config a.json --config b.json"
WHATIF_EXPORT ?= out/probes-10m.parquet
WHATIF_CONFIGS ?= --config docs/examples/whatif-deployed.json --config docs/examples/whatif-stricter.json
whatif: $(STAMP)
	@test -e $(WHATIF_EXPORT) || $(PY) -m simulator export --subscribers 50000 --days 28 --out $(WHATIF_EXPORT)
	$(PY) -m simulator whatif --probe-export $(WHATIF_EXPORT) $(WHATIF_CONFIGS) --out out/whatif

deploy: $(STAMP)
	npx --yes aws-cdk@2 deploy --all

pr: lint test

clean:
	rm -rf cdk.out out .pytest_cache .ruff_cache .mypy_cache
