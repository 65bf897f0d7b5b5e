# ofaserve — the README's two commands are `make run` and `make test`.
SHELL := /bin/bash
PY    := /usr/bin/python3
GOBIN := $(shell go env GOPATH)/bin
export PATH := $(GOBIN):$(PATH)
# Go tests that need a TorchScript fixture or an OFA export call this interpreter.
export OFASERVE_PYTHON := $(PY)

MODEL_REPO ?= models
HTTP_PORT  ?= 8000

.PHONY: all setup shim build models run test lint test-cpp test-go test-race test-py proto bench clean

all: build

setup:
	@scripts/setup.sh

# The C shim over libtorch: build/libofatorch.so (Debian's CPU libtorch here; a CUDA wheel's on GPU boxes).
shim: build/libofatorch.so
build/libofatorch.so: CMakeLists.txt $(wildcard libtorch/csrc/*)
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

test: setup build lint test-cpp test-go test-race test-py

proto:
	@scripts/gen_proto.sh

bench: build
	go test -run '^$$' -bench . -benchmem ./...

clean:
	rm -rf build bin
