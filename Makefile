# Thin wrapper around CMake so the common commands stay short.
#   make            build build/fogpipe (release with debug info)
#   make test       build and run the quick test tier (unit + golden + bad input)
#   make asan       build in build-asan/ with ASan+UBSan and run the quick tier there
#   make check      test + asan: what CI runs (after scripts/setup.sh)
#   make bench      build and run the engine benchmark against darknet
#   make bench-facedet  the face detector against face-api on TF.js WASM (1 thread)
#   make bench-pipeline fogpipe run with 1-4 stages against detect, and the raw transport rate
#   make image      the container image $(IMAGE), offline, FROM scratch (deploy/Containerfile;
#                   podman, or ENGINE=docker); NO_BLAS=1 leaves OpenBLAS out (reference kernels)
#   make podman-up PLAN=plan.json [PORT=8080]  a plan's pipeline in containers on this machine
#   make podman-down                           remove it (docs/deploy.md)
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
BUILD ?= build
VERSION := $(shell sed -n 's/^project.fogpipe VERSION \([0-9.]*\).*/\1/p' CMakeLists.txt)
IMAGE ?= localhost/fogpipe:$(VERSION)
ENGINE ?= podman
PORT ?= 8080
NAME ?= fogpipe

.PHONY: all build test asan check bench bench-facedet bench-pipeline clean

all: build

build:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	cmake --build $(BUILD) -j $(JOBS)

test: build
	ctest --test-dir $(BUILD) --output-on-failure -j $(JOBS)

asan:
	cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DFP_SANITIZE=ON >/dev/null
	cmake --build build-asan -j $(JOBS)
	ctest --test-dir build-asan --output-on-failure -j $(JOBS) -LE slow

check: test asan

bench: build
	bench/engine.sh

bench-facedet: build
	bench/facedet.sh

bench-pipeline: build
	FP_BUILD=$(BUILD) bash bench/pipeline.sh
	$(BUILD)/bench_transport

.PHONY: image podman-up podman-down podman-plan

image: # the fogpipe binary alone, then the image
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	cmake --build $(BUILD) -j $(JOBS) --target fogpipe
	ENGINE=$(ENGINE) deploy/build-image $(if $(NO_BLAS),--no-blas) $(BUILD)/fogpipe $(IMAGE)

podman-plan:
	@test -n "$(PLAN)" || { echo "usage: make podman-up PLAN=plan.json [PORT=8080] [NAME=fogpipe]" >&2; exit 2; }

podman-up: podman-plan image
	FOGPIPE=$(BUILD)/fogpipe deploy/podman-up $(PLAN) --image $(IMAGE) --port $(PORT) --name $(NAME) \
		--out $(BUILD)/deploy-$(NAME)

podman-down:
	deploy/podman-down --name $(NAME)

clean:
	rm -rf build build-asan

# The throughput-vs-devices experiment on emulated devices (root; bench/cluster/, docs/results.md).
#   make cluster-experiment [QUICK=1]
.PHONY: cluster-experiment
cluster-experiment:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	cmake --build $(BUILD) -j $(JOBS) --target fogpipe
	bench/cluster/experiment --fogpipe $(BUILD)/fogpipe $(if $(QUICK),--quick)
