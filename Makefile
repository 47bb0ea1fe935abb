# Thin wrapper around CMake so the common commands stay short.
#   make            build build/fogpipe (release with debug info)
#   make test       build and run the quick test tier (unit + golden + bad input)
#   make asan       build in build-asan/ with ASan+UBSan and run the quick tier there
#   make check      test + asan + cross-check: what CI runs (after scripts/setup.sh)
#   make cross ARCH=arm64       cross-build build-arm64/ for aarch64 (cmake/aarch64-linux-gnu.cmake;
#                               toolchain and arm64 libraries: scripts/setup-arm64.sh)
#   make cross-test ARCH=arm64  ...and run its unit tests and tests/cross/ under qemu-aarch64-static
#   make bench      build and run the engine benchmark against darknet
#   make bench-facedet  the face detector against face-api on TF.js WASM (1 thread)
#   make bench-ort  fogpipe against ONNX Runtime alternating run by run (noisy machines)
#   make bench-pipeline fogpipe run with 1-4 stages against detect, and the raw transport rate
#   make soak       50,000 images through a loopback pipeline; memory and descriptors sampled
#   make image      the container image $(IMAGE), offline, FROM scratch (deploy/Containerfile;
#                   podman, or ENGINE=docker); NO_BLAS=1 leaves OpenBLAS out (reference kernels)
#   make image ARCH=arm64  also $(IMAGE)-arm64 from the cross build, and with podman the
#                   manifest list $(MANIFEST) of both (deploy/manifest-list)
#   make podman-up PLAN=plan.json [PORT=8080]  a plan's pipeline in containers on this machine
#   make podman-down                           remove it (docs/deploy.md)
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
BUILD ?= build
VERSION := $(shell sed -n 's/^project.fogpipe VERSION \([0-9.]*\).*/\1/p' CMakeLists.txt)
IMAGE ?= localhost/fogpipe:$(VERSION)
ENGINE ?= podman
PORT ?= 8080
NAME ?= fogpipe
# Cross builds: only arm64 (aarch64) so far; ARCH empty (or this machine's) means native.
ARCH ?=
HOST_ARCH := $(shell dpkg --print-architecture 2>/dev/null)
CROSS_TRIPLET_arm64 := aarch64-linux-gnu
CROSS_TRIPLET = $(CROSS_TRIPLET_$(ARCH))
CROSS_BUILD ?= build-$(ARCH)
MANIFEST ?= $(IMAGE)-multiarch

.PHONY: all build test asan check bench bench-facedet bench-ort bench-pipeline clean

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

check: test asan cross-check

bench: build
	bench/engine.sh

bench-facedet: build
	bench/facedet.sh

bench-ort: build
	bench/ort_alternate.sh

bench-pipeline: build
	FP_BUILD=$(BUILD) bash bench/pipeline.sh
	$(BUILD)/bench_transport

# make soak [SOAK_IMAGES=50000]: a 3-stage pipeline and the gateway on loopback, fed
# over HTTP; every process's memory and descriptors sampled (bench/soak.sh,
# bench/results/soak.json, docs/reliability.md)
SOAK_IMAGES ?= 50000
.PHONY: soak
soak: build
	FOGPIPE=$(BUILD)/fogpipe bash bench/soak.sh $(SOAK_IMAGES)

.PHONY: image podman-up podman-down podman-plan

image: # the fogpipe binary alone, then the image
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	cmake --build $(BUILD) -j $(JOBS) --target fogpipe
	ENGINE=$(ENGINE) deploy/build-image $(if $(NO_BLAS),--no-blas) $(BUILD)/fogpipe $(IMAGE)
ifneq ($(filter-out $(HOST_ARCH),$(ARCH)),)
	@$(MAKE) --no-print-directory cross-configure ARCH=$(ARCH)
	cmake --build $(CROSS_BUILD) -j $(JOBS) --target fogpipe
	ENGINE=$(ENGINE) deploy/build-image $(if $(NO_BLAS),--no-blas) $(CROSS_BUILD)/fogpipe $(IMAGE)-$(ARCH)
	ENGINE=$(ENGINE) deploy/manifest-list $(MANIFEST) $(IMAGE) $(IMAGE)-$(ARCH)
endif

podman-plan:
	@test -n "$(PLAN)" || { echo "usage: make podman-up PLAN=plan.json [PORT=8080] [NAME=fogpipe]" >&2; exit 2; }

podman-up: podman-plan image
	FOGPIPE=$(BUILD)/fogpipe deploy/podman-up $(PLAN) --image $(IMAGE) --port $(PORT) --name $(NAME) \
		--out $(BUILD)/deploy-$(NAME)

podman-down:
	deploy/podman-down --name $(NAME)

clean:
	rm -rf build build-asan build-arm64

# Cross builds (docs/deploy.md, "arm64"). cross-test compares the cross-built
# fogpipe with this machine's $(BUILD)/fogpipe (tests/cross/detect_faces.sh),
# so it builds that too. cross-check (in make check) runs cross-test for arm64
# when the toolchain is installed (and FOGPIPE_NO_ARM64 is not set) and says why not otherwise;
# CROSS_REQUIRED=1 (scripts/check.sh, after setup installed it) makes that an error.
.PHONY: cross cross-configure cross-test cross-check
cross-configure:
	@test -n "$(CROSS_TRIPLET)" || { echo "usage: make cross ARCH=arm64 (the one cross target so far; ARCH='$(ARCH)')" >&2; exit 2; }
	@command -v $(CROSS_TRIPLET)-gcc >/dev/null || { echo "make cross: no $(CROSS_TRIPLET)-gcc (bash scripts/setup-arm64.sh)" >&2; exit 1; }
	cmake --no-warn-unused-cli -S . -B $(CROSS_BUILD) -DCMAKE_TOOLCHAIN_FILE=cmake/$(CROSS_TRIPLET).cmake -DCMAKE_BUILD_TYPE=RelWithDebInfo \
		-DFP_HOST_FOGPIPE=$(abspath $(BUILD))/fogpipe >/dev/null

cross: cross-configure
	cmake --build $(CROSS_BUILD) -j $(JOBS)

cross-test: build cross
	ctest --test-dir $(CROSS_BUILD) --output-on-failure -j $(JOBS)

cross-check:
	@if [ -n "$$FOGPIPE_NO_ARM64" ]; then \
		echo "cross-check: SKIP: FOGPIPE_NO_ARM64 is set, so no arm64 tests"; \
	elif command -v aarch64-linux-gnu-gcc >/dev/null && command -v qemu-aarch64-static >/dev/null; then \
		$(MAKE) --no-print-directory cross-test ARCH=arm64; \
	elif [ -n "$(CROSS_REQUIRED)" ]; then \
		echo "cross-check: FAIL: the arm64 cross toolchain is missing (bash scripts/setup-arm64.sh)" >&2; exit 1; \
	else \
		echo "cross-check: SKIP: no aarch64-linux-gnu-gcc or qemu-aarch64-static, so no arm64 tests" \
			"(bash scripts/setup-arm64.sh, then make cross-test ARCH=arm64)"; \
	fi

# make fuzz [FUZZ_SECONDS=300] [FUZZ_TARGETS="cfg frame ..."]: builds the libFuzzer targets
# (tests/fuzz/, clang-14, ASan+UBSan) in $(FUZZ_BUILD)/ and runs each for FUZZ_SECONDS with its
# seeds (tests/fuzz/corpus/<t>/; new inputs go to $(FUZZ_BUILD)/fuzz/<t>/corpus). Crashes land
# in $(FUZZ_BUILD)/fuzz/<t>/crashes/; logs in $(FUZZ_BUILD)/fuzz/<t>.log (docs/reliability.md).
FUZZ_SECONDS ?= 300
FUZZ_TARGETS ?= cfg weights tfjs plan cluster frame image result http key stagew
FUZZ_BUILD ?= build-fuzz
FUZZ_CC ?= clang-14
FUZZ_FLAGS ?= -rss_limit_mb=4096 -timeout=30 -max_len=65536
.PHONY: fuzz
fuzz:
	CC=$(FUZZ_CC) cmake -S . -B $(FUZZ_BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DFP_SANITIZE=ON \
		-DFP_FUZZ=ON -DFP_WERROR=OFF >/dev/null
	cmake --build $(FUZZ_BUILD) -j $(JOBS) --target $(addprefix fuzz_,$(FUZZ_TARGETS))
	@fail=; for t in $(FUZZ_TARGETS); do \
		d=$(FUZZ_BUILD)/fuzz/$$t; mkdir -p $$d/corpus $$d/crashes; \
		extra=; [ $$t = cfg ] && extra=tests/data/bad/cfg; [ $$t = image ] && extra=tests/data/bad/img; \
		echo "fuzz: $$t for $(FUZZ_SECONDS) s (log $$d.log)"; \
		if FP_LOG_LEVEL=error $(FUZZ_BUILD)/fuzz_$$t $(FUZZ_FLAGS) -max_total_time=$(FUZZ_SECONDS) \
			-print_final_stats=1 -artifact_prefix=$$d/crashes/ $$d/corpus tests/fuzz/corpus/$$t \
			$$(ls -d tests/fuzz/regress/$$t 2>/dev/null) $$extra >$$d.log 2>&1; then :; else fail="$$fail $$t"; fi; \
		grep -E '^(stat::number_of_executed_units|#[0-9]+ *DONE)' $$d.log | tail -2; \
		ls $$d/crashes | sed 's/^/  crash: /'; \
	done; if [ -n "$$fail" ]; then echo "fuzz: failed:$$fail" >&2; exit 1; fi

# The throughput-vs-devices experiment on emulated devices (root; bench/cluster/, docs/results.md).
#   make cluster-experiment [QUICK=1]
.PHONY: cluster-experiment
cluster-experiment:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	cmake --build $(BUILD) -j $(JOBS) --target fogpipe
	bench/cluster/experiment --fogpipe $(BUILD)/fogpipe $(if $(QUICK),--quick)
