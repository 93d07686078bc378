# Subscriber Feedback Loop – every target sets up what it needs (.venv from the repo's own files).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION := 1
export AWS_DEFAULT_REGION ?= eu-west-2
export CDK_DEFAULT_REGION ?= eu-west-2

.PHONY: setup demo test test-fast synth lint format bench cost cost-inputs deploy pr clean

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
	$(PY) -m simulator bench --dense --out out/dense

# The monthly estimate at 1M and 10M subscribers (README "Cost"); cost.json in out/cost-*.
cost: $(STAMP)
	$(PY) -m simulator cost --subscribers 1000000 --out out/cost-1m
	$(PY) -m simulator cost --subscribers 10000000 --out out/cost-10m

# Re-measure simulator/cost_inputs.json: the dense bench, then a twin day at 50 records per
# subscriber-day (~10 min), then the measurement.
cost-inputs: $(STAMP)
	$(PY) -m simulator bench --dense --out out/dense
	$(PY) -m simulator bench --write-day out/day50-scenario.json --subscribers 400 --records-per-subscriber-day 50
	$(PY) -m simulator run --scenario out/day50-scenario.json --out out/day50
	$(PY) -m simulator cost --measure out/day50 --scenario out/day50-scenario.json --dense out/dense/dense.json

deploy: $(STAMP)
	npx --yes aws-cdk@2 deploy --all

pr: lint test

clean:
	rm -rf cdk.out out .pytest_cache .ruff_cache .mypy_cache
