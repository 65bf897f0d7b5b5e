# ofaserve — the README's two commands are `make run` and `make test`.
SHELL := /bin/bash
PY    := /usr/bin/python3
GOBIN := $(shell go env GOPATH)/bin
export PATH := $(GOBIN):$(PATH)
# Go tests that need a TorchScript fixture or an OFA export call this interpreter.
export OFASERVE_PYTHON := $(PY)
# Binaries find libofatorch.so beside them or in ../lib when deployed (cgo directives cannot carry '$').
export CGO_LDFLAGS := -Wl,-rpath,$$ORIGIN -Wl,-rpath,$$ORIGIN/../lib
# go-nvml's header marks many NVML calls deprecated; cgo compiles them all, so silence that one warning.
export CGO_CFLAGS := -O2 -g -Wno-deprecated-declarations
# Packages whose test binaries scripts/gpu/gpu_check.sh runs on a GPU box (OFASERVE_TEST_DEVICE=cuda:0): the
# shim and staging, the buckets, both kinds (parity on the device), the server (NVML gauges).
GPU_TEST_PKGS ?= libtorch bucket backend/libtorch backend/ofa server

MODEL_REPO ?= models
HTTP_PORT  ?= 8000

.PHONY: all setup setup-run setup-test shim build models run test test-begin lint test-cpp test-go test-race test-asan test-py test-fuzz proto bench bench-shim gpu-tests clean

all: build

# `make run` installs only what running needs; `make test` adds the test-only packages.
setup: setup-test
setup-run:
	@scripts/dev/setup.sh run
setup-test:
	@scripts/dev/setup.sh test

# The C shim over libtorch: build/libofatorch.so (Debian's CPU libtorch here; a CUDA wheel's on GPU boxes).
shim: build/libofatorch.so
build/libofatorch.so: CMakeLists.txt $(wildcard libtorch/csrc/* libtorch/csrc/test/*)
	@cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
	@cmake --build build -j2 >/dev/null

build: shim
	@mkdir -p bin
	go build -o bin/ ./cmd/...

# The default model repository: a small OFA with the real architecture and seeded random weights.
models: build
	@scripts/dev/make_models.sh $(MODEL_REPO)

run: setup-run build models
	@scripts/dev/run.sh $(MODEL_REPO) $(HTTP_PORT)

lint:
	@$(PY) scripts/dev/check_doc_refs.py
	@long=$$(git ls-files '*.go' | grep -v '\.pb\.go$$' | xargs wc -l | awk '$$2 != "total" && $$1 > 500 {print $$2" ("$$1" lines)"}'); \
	  if [ -n "$$long" ]; then echo "hand-written Go files over 500 lines: $$long"; exit 1; fi
	@go mod tidy -diff >/dev/null || { echo "go.mod/go.sum are not tidy: run go mod tidy"; go mod tidy -diff; exit 1; }
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt: $$out"; exit 1; fi
	go vet ./...
	staticcheck ./...

test-cpp: shim
	@set -o pipefail; cd build && ctest --output-on-failure | tee ctest.log
	@printf 'ctest: %s\n' "$$(grep -E 'tests passed|tests failed' build/ctest.log)" >> $(COUNTS)

# Every runner appends its count line to $(COUNTS); `make test` prints them together at the end.
COUNTS := build/test-counts.txt
GOTEST_SUMMARY = $(PY) scripts/dev/gotest_summary.py --counts $(COUNTS)

test-go: build
	@mkdir -p build
	@set -o pipefail; go test -count=1 -json ./... | $(GOTEST_SUMMARY) --label "go test"

test-race: build
	@mkdir -p build
	@set -o pipefail; go test -count=1 -race -json ./batcher/... | $(GOTEST_SUMMARY) --label "go test -race (batcher)"

test-py:
	@mkdir -p build
	@set -o pipefail; $(PY) -m pytest -q -rs scripts | tee build/pytest.log
	@printf 'pytest: %s\n' "$$(tail -n1 build/pytest.log | sed 's/^=* *//; s/ *=*$$//')" >> $(COUNTS)

# The decoders of outside bytes, fuzzed briefly (FUZZTIME=5m for a longer run by hand): the KServe codec,
# --cache-config, the trace and logging setting bodies, traceparent, and the --trace-config / --metrics-config values.
FUZZTIME ?= 10s
FUZZ_TARGETS ?= FuzzDecodeJSONInfer:./protocol/kserve/ FuzzBinaryFraming:./protocol/kserve/ FuzzParseConfig:./repository/cache/ \
	FuzzDecodeSettings:./protocol/kserve/ FuzzParseUpdate:./tracing/ FuzzRemoteParent:./tracing/ FuzzParseConfig:./tracing/ \
	FuzzParseUpdate:./logging/ FuzzParseMetricsConfig:./server/
# scripts/dev/run_fuzz.sh retries once a run that Go 1.26's coordinator ends with its deadline race (no input).
test-fuzz:
	@for t in $(FUZZ_TARGETS); do scripts/dev/run_fuzz.sh "$${t%%:*}" "$${t#*:}" $(FUZZTIME) || exit 1; done
	@echo "fuzz: $(words $(FUZZ_TARGETS)) targets fuzzed for $(FUZZTIME) each, no failure" >> $(COUNTS)

# The C resampler under AddressSanitizer: its PIL comparisons and its vector-vs-plain fuzz target, which also
# runs for FUZZTIME (a load or store outside the rows it was given fails here, not silently elsewhere).
test-asan: build
	@mkdir -p build
	@set -o pipefail; go test -count=1 -asan -json -run 'Resize|Resample' ./preprocess/ | $(GOTEST_SUMMARY) --label "go test -asan (preprocess resampler)"
	@scripts/dev/run_fuzz.sh FuzzResampleSIMD ./preprocess/ $(FUZZTIME) -asan
	@echo "fuzz -asan: FuzzResampleSIMD fuzzed for $(FUZZTIME), no failure" >> $(COUNTS)

test: setup-test build test-begin lint test-cpp test-go test-race test-asan test-py test-fuzz
	@echo "== tests run, per runner =="; cat $(COUNTS)

test-begin:
	@mkdir -p build && rm -f $(COUNTS)

proto:
	@scripts/dev/setup.sh proto
	@scripts/dev/gen_proto.sh

bench: build
	go test -run '^$$' -bench . -benchmem ./...

# The simulated-device figures of docs/PERFORMANCE.md (Triton rules vs adaptive): scripts/bench/bench_simulated.sh.
bench-simulated: ; @scripts/bench/bench_simulated.sh

# Go -> shim -> forward vs the same module called from C++ (README, Benchmarks).
bench-shim: shim
	@scripts/bench/bench_shim_overhead.sh

# What scripts/gpu/gpu_session.sh needs on a GPU box without Go, in one file to carry: bin/gpu-bundle.tar.xz
# (bin/ofaserve, bin/ofabench, bin/gpu-tests/<pkg>.test + manifest.tsv + parity-sources/; scripts/gpu/make_bundle.sh).
gpu-tests: shim
	@scripts/gpu/make_bundle.sh "$(GPU_TEST_PKGS)"

clean:
	rm -rf build bin
