# fuzz.mk - libFuzzer targets (clang), included from the Makefile.
#   make fuzz-tokenizer [FUZZ_SECONDS=120]   tokenizer loaders, encoder and regex engine
#   make fuzz-images [FUZZ_SECONDS=120]      image loaders (PNG, PPM/PGM, CIFAR, IDX, class folders)
# under AddressSanitizer + UBSan; the corpus grows in build/fuzz/corpus-<target>.
FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 120
FUZZ_BUILD   := build/fuzz
FUZZ_CFLAGS  := -std=c11 -O1 -g -D_GNU_SOURCE -Iharness -fsanitize=fuzzer,address,undefined \
                -fno-sanitize-recover=undefined -fno-omit-frame-pointer
FUZZ_TOKENIZER_SRC := tests/fuzz/fuzz_tokenizer.c $(wildcard harness/tokenizer*.c) harness/regex.c \
                      harness/unicode.c harness/unicode_tables.c harness/gguf.c harness/mapped_file.c harness/error.c

.PHONY: fuzz-tokenizer
$(FUZZ_BUILD)/fuzz_tokenizer: $(FUZZ_TOKENIZER_SRC) $(wildcard harness/*.h)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -o $@ $(FUZZ_TOKENIZER_SRC) -lcjson -lm

fuzz-tokenizer: $(FUZZ_BUILD)/fuzz_tokenizer
	@mkdir -p $(FUZZ_BUILD)/corpus-tokenizer
	$< -max_total_time=$(FUZZ_SECONDS) -max_len=8192 -timeout=20 -rss_limit_mb=4096 -artifact_prefix=$(FUZZ_BUILD)/ \
	    $(FUZZ_BUILD)/corpus-tokenizer tests/fuzz/seeds

FUZZ_IMAGES_SRC := tests/fuzz/fuzz_images.c $(filter-out datasets/cmd_data.c,$(wildcard datasets/image_*.c)) \
                   harness/mapped_file.c harness/error.c

.PHONY: fuzz-images
$(FUZZ_BUILD)/fuzz_images: $(FUZZ_IMAGES_SRC) $(wildcard datasets/image*.h)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -Idatasets -o $@ $(FUZZ_IMAGES_SRC) -lpng -lm

# Seeds: the committed image fixtures, each behind the selector byte of its loader.
fuzz-images: $(FUZZ_BUILD)/fuzz_images
	@mkdir -p $(FUZZ_BUILD)/corpus-images $(FUZZ_BUILD)/seeds-images
	for f in tests/reference/images/folder/*/*.p?g tests/reference/images/bad/truncated/x/cut.png; do \
	    { printf '\000'; cat "$$f"; } >$(FUZZ_BUILD)/seeds-images/0-$$(basename $$f); done
	{ printf '\001'; head -c 6146 tests/reference/images/cifar10/data_batch_1.bin; } >$(FUZZ_BUILD)/seeds-images/1-cifar10
	{ printf '\002'; head -c 3074 tests/reference/images/cifar100/train.bin; } >$(FUZZ_BUILD)/seeds-images/2-cifar100
	{ printf '\003'; cat tests/reference/images/mnist/train-images-idx3-ubyte; head -c 60 /dev/zero | tr '\0' '\1'; } \
	    >$(FUZZ_BUILD)/seeds-images/3-mnist
	$< -max_total_time=$(FUZZ_SECONDS) -max_len=16384 -timeout=20 -rss_limit_mb=4096 -artifact_prefix=$(FUZZ_BUILD)/images- \
	    $(FUZZ_BUILD)/corpus-images $(FUZZ_BUILD)/seeds-images
