# slimbench - build, test and benchmark.
#   make                 build ./slimbench
#   make test            build and run every test; ends with "N passed, N failed"
#   make test SANITIZE=1 the same under AddressSanitizer + UBSan (separate build dir)
#   make bench           engine speed benchmark (ratios against GEMM peak and memory bandwidth);
#                        BENCH_FLAGS="--backend cuda" times the CUDA backend (bf16 1.2 B Llama, vs PyTorch)
#   make demo            the built-in model through a compression sweep: leaderboard + plots in results/demo/
#   make builtin-models  retrains datasets/builtin/ from the built-in corpus and shapes (a few minutes)
#   make builtin-vit     retrains only the built-in ViT (datasets/builtin/vit-shapes)
#   BLAS=openblas (default) or BLAS=blis selects the CBLAS implementation.
#   CUDA=1 / CUDA=0      with / without the CUDA backend (default: with it when nvcc is
#                        on the PATH or at /usr/local/cuda/bin); CUDA_ARCH sets -gencode.

CC       ?= cc
BLAS     ?= openblas
SANITIZE ?= 0
ARCH     ?= -march=native
MULTIARCH := $(shell $(CC) -print-multiarch 2>/dev/null)

CFLAGS   = -std=c11 -O2 $(ARCH) -g -Wall -Wextra -Werror -D_GNU_SOURCE -pthread -Iharness -Idatasets
LDLIBS   = -lcjson -lcsv -lpng -lm -lpthread -ldl

ifeq ($(BLAS),openblas)
  CFLAGS += $(shell pkg-config --cflags openblas 2>/dev/null || echo -I/usr/include/$(MULTIARCH)/openblas-pthread)
  LDLIBS := $(shell pkg-config --libs openblas 2>/dev/null || echo -lopenblas) $(LDLIBS)
  CFLAGS += -DSB_BLAS_OPENBLAS
else ifeq ($(BLAS),blis)
  CFLAGS += -isystem /usr/include/$(MULTIARCH)/blis-openmp -fopenmp -DSB_BLAS_BLIS
  LDLIBS := -L/usr/lib/$(MULTIARCH)/blis-openmp -lblis -fopenmp $(LDLIBS)
else
  $(error BLAS must be openblas or blis, not '$(BLAS)')
endif

# make MPI=1: one sweep across the ranks of an MPI job (OpenMPI from Debian).
ifeq ($(MPI),1)
  CC := mpicc
  CFLAGS += -DSB_MPI
  MPI_SUFFIX := -mpi
endif

# The CUDA backend (harness/cuda/*.cu) goes into the same executable when nvcc is found.
NVCC ?= $(shell command -v nvcc 2>/dev/null || (test -x /usr/local/cuda/bin/nvcc && echo /usr/local/cuda/bin/nvcc))
ifeq ($(origin CUDA),undefined)
  CUDA := $(if $(NVCC),1,0)
endif
ifeq ($(CUDA),1)
  ifeq ($(NVCC),)
    $(error CUDA=1 but no nvcc on the PATH or at /usr/local/cuda/bin; set NVCC=/path/to/nvcc)
  endif
  CUDA_HOME ?= $(patsubst %/bin/nvcc,%,$(NVCC))
  # A100 (sm_80) and H100/H200 (sm_90) as machine code, PTX for newer GPUs.
  CUDA_ARCH ?= -gencode arch=compute_80,code=sm_80 -gencode arch=compute_90,code=[sm_90,compute_90]
  NVCCFLAGS = -std=c++17 -O2 -g $(CUDA_ARCH) -Iharness -DSB_CUDA -Werror all-warnings \
              -Xcompiler -Wall,-Wextra,-Werror,-fPIC
  CFLAGS += -DSB_CUDA
  LDLIBS += -L$(CUDA_HOME)/lib64 -Wl,-rpath,$(CUDA_HOME)/lib64 -lcusolver -lcublas -lcudart -lstdc++
  CUDA_SUFFIX := -cuda
endif

ifeq ($(SANITIZE),1)
  CFLAGS += -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
  LDFLAGS += -fsanitize=address,undefined
  BUILD := build/san-$(BLAS)$(MPI_SUFFIX)$(CUDA_SUFFIX)
else
  BUILD := build/$(BLAS)$(MPI_SUFFIX)$(CUDA_SUFFIX)
endif

.DEFAULT_GOAL := all

# Every .c under these folders is part of the library; main.c is the CLI.
LIB_SRC  := $(filter-out harness/main.c,$(wildcard harness/*.c methods/*.c tasks/*.c datasets/*.c))
ifneq ($(MPI),1)
  LIB_SRC := $(filter-out harness/runner_mpi.c,$(LIB_SRC))
endif
LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/%.o)
ifeq ($(CUDA),1)
  CUDA_SRC := $(wildcard harness/cuda/*.cu)
  LIB_OBJ  += $(CUDA_SRC:%.cu=$(BUILD)/%.o)
endif
# The plot templates plots/*.gp (the source of truth) are compiled into the binary
# as C strings (plot.h), so `slimbench plot` works from any directory.
PLOT_TEMPLATES := $(sort $(wildcard plots/*.gp))
LIB_OBJ  += $(BUILD)/gen/plot_templates.o
$(BUILD)/gen/plot_templates.c: plots/embed.awk $(PLOT_TEMPLATES)
	@mkdir -p $(dir $@)
	awk -f plots/embed.awk $(PLOT_TEMPLATES) >$@.tmp && mv -f $@.tmp $@
$(BUILD)/gen/plot_templates.o: $(BUILD)/gen/plot_templates.c
	$(CC) $(CFLAGS) -MMD -MP -c -o $@ $<
TEST_SRC := $(wildcard tests/test_*.c)
TEST_BIN := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)
TEST_OBJ := $(BUILD)/tests/check.o
# Example external plugins, loaded by the tests with --plugin.
PLUGIN_SRC := $(wildcard tests/plugins/*.c)
PLUGIN_SO  := $(PLUGIN_SRC:tests/plugins/%.c=$(BUILD)/plugins/%.so)

# The commit goes into every results record; version.o is rebuilt each time so it never goes stale.
GIT_COMMIT := $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
$(BUILD)/harness/version.o: CFLAGS += -DSB_GIT_COMMIT=\"$(GIT_COMMIT)\"
$(BUILD)/harness/version.o: FORCE
FORCE:

.PHONY: all test test-mpi slimbench-mpi bench clean slimbench FORCE demo builtin-models builtin-vit
all: slimbench

# Copy then rename: a running ./slimbench keeps its old inode instead of failing the copy.
slimbench: $(BUILD)/slimbench
	cp $< $@.tmp && mv -f $@.tmp $@

# -rdynamic: plugins call back into the harness (parameters, formats).
$(BUILD)/slimbench: $(BUILD)/harness/main.o $(LIB_OBJ)
	$(CC) $(LDFLAGS) -rdynamic -o $@ $^ $(LDLIBS)

$(BUILD)/plugins/%.so: tests/plugins/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -fPIC -shared -MMD -MP -o $@ $<

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c -o $@ $<

$(BUILD)/%.o: %.cu
	@mkdir -p $(dir $@)
	$(NVCC) $(NVCCFLAGS) -MMD -MP -c -o $@ $<

# GPTQ's column loop must round as the CPU build does, which (ISO C11) never
# contracts a·b + c into an FMA: no contraction in its kernel either.
$(BUILD)/harness/cuda/gptq.o: NVCCFLAGS += -fmad=false

$(BUILD)/tests/%: tests/%.c $(TEST_OBJ) $(LIB_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Itests $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/tests/check.o: tests/check.c tests/check.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Itests -c -o $@ $<

test: slimbench $(TEST_BIN) $(PLUGIN_SO)
	@SB_TEST_BIN=$(BUILD)/tests SB_PLUGIN_DIR=$(BUILD)/plugins SB_SLIMBENCH=./slimbench bash tests/run_tests.sh

# The MPI build (needs libopenmpi-dev, openmpi-bin) and its test, beside the normal tests.
test-mpi: slimbench $(PLUGIN_SO)
	$(MAKE) MPI=1 BLAS=$(BLAS) SANITIZE=$(SANITIZE) slimbench-mpi
	SB_PLUGIN_DIR=$(BUILD)/plugins SB_MPI_SLIMBENCH=$(BUILD)-mpi/slimbench bash tests/cli_mpi.sh

slimbench-mpi: $(BUILD)/slimbench

bench: slimbench
	./slimbench bench $(BENCH_FLAGS)

# The demo: sweep over datasets/builtin/ (resumes from results/demo/runs.jsonl; DEMO_FLAGS=--fresh restarts).
demo: slimbench
	./slimbench demo $(DEMO_FLAGS)

# The built-in model, rebuilt from nothing but the generators and the training config.
# Threads are fixed at 2: training is deterministic for a given thread count, so the
# checkpoint is bit-identical on any machine; train_log.json differs only in wall time.
# The model folder holds only what the loader reads: its hash (part of every run id) must
# not change when the log or a README does, so the logs move up beside the configs.
# Two phases: copy games alone (train_games.json), where the model learns to look a value up
# by its key in the context, then the stories with games mixed in (train.json, --init).
BUILTIN := datasets/builtin
BUILTIN_MODEL := $(BUILTIN)/story-1.9m
BUILTIN_DATA := $(BUILD)/builtin-data
builtin-models: slimbench builtin-vit
	./slimbench data corpus --out $(BUILTIN_DATA) --games-percent 30
	./slimbench data games --out $(BUILTIN_DATA)
	./slimbench data bpe --input $(BUILTIN_DATA)/train.txt --vocab 1024 --out $(BUILTIN_DATA)/tokenizer
	./slimbench train --config $(BUILTIN)/train_games.json --data $(BUILTIN_DATA)/games_train.txt \
	    --valid $(BUILTIN_DATA)/games_valid.txt --tokenizer $(BUILTIN_DATA)/tokenizer \
	    --out $(BUILTIN_DATA)/model-games --dtype f32 --threads 2
	./slimbench train --config $(BUILTIN)/train.json --init $(BUILTIN_DATA)/model-games \
	    --data $(BUILTIN_DATA)/train+games.txt --valid $(BUILTIN_DATA)/valid+games.txt \
	    --tokenizer $(BUILTIN_DATA)/tokenizer --out $(BUILTIN_DATA)/model --dtype bf16 --threads 2
	mkdir -p $(BUILTIN_MODEL)
	cp $(BUILTIN_DATA)/model/config.json $(BUILTIN_DATA)/model/model.safetensors \
	    $(BUILTIN_DATA)/model/tokenizer.json $(BUILTIN_DATA)/model/tokenizer_config.json $(BUILTIN_MODEL)/
	cp $(BUILTIN_DATA)/model-games/train_log.json $(BUILTIN)/train_games_log.json
	cp $(BUILTIN_DATA)/model/train_log.json $(BUILTIN)/

# The built-in image classifier: a ViT trained on builtin:shapes (datasets/image_synth.c), the
# same rules as above (2 threads, bit-identical checkpoint, the log beside the config).
VIT_MODEL := $(BUILTIN)/vit-shapes
builtin-vit: slimbench
	./slimbench train-vit --config $(BUILTIN)/vit_train.json --data builtin:shapes:train --valid builtin:shapes:valid \
	    --test builtin:shapes:test --out $(BUILTIN_DATA)/vit --dtype bf16 --threads 2
	mkdir -p $(VIT_MODEL)
	cp $(BUILTIN_DATA)/vit/config.json $(BUILTIN_DATA)/vit/model.safetensors $(BUILTIN_DATA)/vit/preprocessor_config.json $(VIT_MODEL)/
	cp $(BUILTIN_DATA)/vit/train_log.json $(BUILTIN)/vit_train_log.json

clean:
	rm -rf build slimbench

-include $(shell find build -name '*.d' 2>/dev/null)
-include tests/fuzz/fuzz.mk
