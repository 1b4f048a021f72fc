# 科普日智能助手 -- the two commands: `make run` and `make test`.
SHELL := /bin/bash
PY := .venv/bin/python
RASA := .venv/bin/rasa
export SQLALCHEMY_SILENCE_UBER_WARNING := 1
export TF_CPP_MIN_LOG_LEVEL := 2
export PYTHONDONTWRITEBYTECODE := 1
# Reproducible training: Rasa's graph cache changes the trained model (see scripts/train.sh).
export RASA_MAX_CACHE_SIZE := 0

.PHONY: run run-cluster stop-cluster status-cluster install kb generate train shell serve stop test \
        test-deps lint validate pytest test-stories test-faults loadtest eval crossval bench bench-retrain \
        bench-dashboard grouping-threshold clean

## run: install, build the knowledge base, train if needed, start everything (Ctrl-C stops)
run: train
	@scripts/run.sh

## run-cluster: two replicas behind nginx on :5005, conversations and knowledge in PostgreSQL, locks
## and WeChat state in Redis (README "Several replicas"); returns once GET /status answers 200
run-cluster: train
	@scripts/cluster.sh start

## stop-cluster: stop nginx and every replica that run-cluster started
stop-cluster:
	@scripts/cluster.sh stop

status-cluster:
	@scripts/cluster.sh status

install:
	@scripts/install.sh

## kb: validate knowledge/ and load it into the database
kb: install
	@$(PY) -m bot.knowledge.build

## generate: derived NLU files (lookup tables, templated examples, jieba dictionary)
generate: install
	@$(PY) -m bot.generate

## train: train a model only if config, domain or data changed
train: kb generate
	@scripts/train.sh

## shell: chat in the terminal (starts the action server in the background)
shell: train
	@trap 'kill %1 2>/dev/null' EXIT; $(PY) -m rasa_sdk --actions actions --port 5055 >build/run-actions-shell.log 2>&1 & \
	sleep 3; $(RASA) shell --model "$$(cat build/current_model)" --endpoints endpoints.yml

serve: train
	@scripts/serve.sh start

stop:
	@scripts/serve.sh stop

test-deps: install
	@scripts/install-test-deps.sh

lint: install
	@$(PY) -m ruff check bot actions tests scripts

validate: train
	@mkdir -p results
	@$(RASA) data validate --domain domain.yml --data data --config config.yml --fail-on-warnings \
	   >results/validate.log 2>&1 || { tail -30 results/validate.log; exit 1; }
	@tail -3 results/validate.log

pytest: kb generate
	@$(PY) -m pytest -q tests -m "not e2e"

## test: everything, from a fresh clone (CI calls this)
test: test-deps train
	@mkdir -p results
	@$(PY) -m ruff check bot actions tests scripts
	@$(RASA) data validate --domain domain.yml --data data --config config.yml --fail-on-warnings \
	   >results/validate.log 2>&1 || { tail -30 results/validate.log; exit 1; }
	@tail -3 results/validate.log
	@$(RASA) test core --model "$$(cat build/current_model)" --stories tests/test_stories.yml \
	   --endpoints endpoints.yml --fail-on-prediction-errors --out results/core >/dev/null 2>results/core.log \
	   || { tail -30 results/core.log; cat results/core/failed_test_stories.yml 2>/dev/null; exit 1; }
	@echo "rasa test stories: passed"
	@$(PY) -m pytest -q tests

## test-faults: the cluster under load while its action server, PostgreSQL, Redis or a replica fails
## (its own PostgreSQL and Redis on free ports; about 2 minutes; also part of `make test`)
test-faults: test-deps train
	@$(PY) -m pytest -q -p no:warnings tests/faults

## loadtest: locust, 200 users in multi-turn conversations for 60 s against a cluster it starts on free
## ports; fails on any wrong or missing reply (results/loadtest.json, results/loadtest.png)
loadtest: test-deps train
	@$(PY) -m tests.load.run

## eval: the dev and the holdout conversation suites, each reported on its own, against a running
## server (starts one if none answers); non-zero when the holdout misses a target. EVAL_SET=dev|holdout|all
EVAL_SET ?= all
eval: train
	@$(PY) -m bot.evaluation --start --strict --set $(EVAL_SET)

## crossval: NLU cross-validation (report in results/crossval, not in git)
crossval: kb generate
	@$(RASA) test nlu --config config_nlu_testing.yml --nlu data --cross-validation --folds 3 --out results/crossval
	@$(PY) -c "import json; r=json.load(open('results/crossval/intent_report.json')); print('intent weighted F1:', round(r['weighted avg']['f1-score'],4))"

## bench: latency, memory, start-up and training time (a benchmark, not a test)
bench: train
	@$(PY) -m tests.bench.bench

## bench-retrain: add an FAQ, retrain and hot-swap the live server under load, then undo (results/bench_retrain.json)
bench-retrain: train
	@$(PY) -m tests.bench.bench_retrain

## bench-dashboard: the staff dashboard's page time with 100 000 generated messages (results/bench_dashboard.json)
bench-dashboard: kb
	@$(PY) -m tests.bench.bench_dashboard

## grouping-threshold: the unanswered-question grouping swept over thresholds on its labelled set
grouping-threshold: kb
	@$(PY) -m tests.bench.grouping_threshold

clean:
	rm -rf build results models .rasa
