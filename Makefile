# ofaserve — the README's two commands are `make run` and `make test`.
SHELL := /bin/bash
PY    := /usr/bin/python3
GOBIN := $(shell go env GOPATH)/bin
export PATH := $(GOBIN):$(PATH)
# Go tests that need a TorchScript fixture or an OFA export call this interpreter.
export OFASERVE_PYTHON := $(PY)
# Binaries find libofatorch.so beside them or in ../lib when deployed (cgo directives cannot carry '$').
export CGO_LDFLAGS := -Wl,-rpath,$$ORIGIN -Wl,-rpath,$$ORIGIN/../lib
# Packages whose test binaries scripts/gpu_check.sh runs on a GPU box (OFASERVE_TEST_DEVICE=cuda:0).
GPU_TEST_PKGS ?= libtorch backend/libtorch backend/ofa server

MODEL_REPO ?= models
HTTP_PORT  ?= 8000

.PHONY: all setup shim build models run test lint test-cpp test-go test-race test-py test-fuzz proto bench bench-shim gpu-tests clean

all: build

setup:
	@scripts/setup.sh

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
	@scripts/make_models.sh $(MODEL_REPO)

run: setup build models
	bin/ofaserve --model-repository=$(MODEL_REPO) --http-port=$(HTTP_PORT)

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt: $$out"; exit 1; fi
	go vet ./...
	staticcheck ./...

test-cpp: shim
	@cd build && ctest --output-on-failure

test-go: build
	go test -count=1 ./...

test-race: build
	go test -count=1 -race ./batcher/...

test-py:
	$(PY) -m pytest -q scripts

# The server's decoders of outside bytes, fuzzed briefly (FUZZTIME=5m for a longer run by hand).
FUZZTIME ?= 10s
test-fuzz:
	go test -run '^$$' -fuzz '^FuzzDecodeJSONInfer$$' -fuzztime $(FUZZTIME) ./server/
	go test -run '^$$' -fuzz '^FuzzBinaryFraming$$' -fuzztime $(FUZZTIME) ./server/

test: setup build lint test-cpp test-go test-race test-py test-fuzz

proto:
	@scripts/gen_proto.sh

bench: build
	go test -run '^$$' -bench . -benchmem ./...

# Go -> shim -> forward vs the same module called from C++ (README, Benchmarks).
bench-shim: shim
	@scripts/bench_shim_overhead.sh

# Test binaries for scripts/gpu_check.sh (a GPU box has no Go): bin/gpu-tests/<pkg>.test + manifest.tsv.
gpu-tests: shim
	@rm -rf bin/gpu-tests && mkdir -p bin/gpu-tests
	@for p in $(GPU_TEST_PKGS); do n=$$(echo $$p | tr / -).test; \
	  go test -c -o bin/gpu-tests/$$n ./$$p && printf '%s\t%s\n' $$n $$p >> bin/gpu-tests/manifest.tsv || exit 1; done

clean:
	rm -rf build bin
