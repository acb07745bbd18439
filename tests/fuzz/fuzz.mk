# fuzz.mk - libFuzzer targets (clang), included from the Makefile.
#   make fuzz-tokenizer [FUZZ_SECONDS=120]   tokenizer loaders, encoder and regex engine
# under AddressSanitizer + UBSan; the corpus grows in build/fuzz/corpus-tokenizer.
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
