/* main.c - the slimbench executable: dispatches to one sub-command. */
#include <stdio.h>
#include <string.h>

#include "cli.h"

typedef struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *usage;
} command;

static const command commands[] = {
    {"demo", sb_cmd_demo, "demo [--out DIR] [--fresh] [--quick]  the built-in model through a compression sweep: leaderboard and plots"},
    {"info", sb_cmd_info, "info --model PATH            architecture, sizes and tensor formats of a model"},
    {"logits", sb_cmd_logits, "logits --model PATH (--tokens 1,2,3 | --text S) [--top K] [--no-bos]"},
    {"tokenize", sb_cmd_tokenize, "tokenize --model PATH (--text S | --file F) [--no-bos]"},
    {"run", sb_cmd_run, "run CONFIG.json [--out DIR] [--resume] [--shard K/N] [--backend cpu|cuda[:N]] [--plugin X.so] [--quiet]"},
    {"eval", sb_cmd_eval, "eval --model PATH --task NAME [--method NAME] [--backend cpu|cuda[:N]] [--TASK-PARAM V ...] [--method-param K=V]"},
    {"list", sb_cmd_list, "list [methods|tasks|archs|formats|backends] [--json] [--plugin X.so]"},
    {"report", sb_cmd_report, "report DIR [--format md|csv|html|json] [--group-by KEY] [--metrics m1,m2] [--relative-to METHOD] [--out FILE]"},
    {"compare", sb_cmd_compare, "compare CURRENT BASELINE [--tolerance METRIC=REL ...] [--default-tolerance REL] [--ignore METRIC ...] [--junit FILE]"},
    {"plot", sb_cmd_plot, "plot DIR [--out OUTDIR] [--format png|svg|both] [--metric TASK:METRIC ...]  gnuplot charts"},
    {"data", sb_cmd_data, "data (corpus --out DIR [--stories N] [--games-percent P] | games --out DIR [--paragraphs N] | mc --out DIR [--n N] | bpe --input F --vocab N --out DIR | images PATH [--limit N]) [--seed S]"},
    {"train", sb_cmd_train, "train --config F.json --data FILE --tokenizer DIR_OR_JSON --out DIR [--valid FILE] [--dtype f32|bf16] [--init DIR]"},
    {"train-vit", sb_cmd_train_vit, "train-vit --config F.json --out DIR [--data SET] [--valid SET] [--test SET] [--dtype f32|bf16] | --eval DIR --data SET"},
    {"merge", sb_cmd_merge, "merge OUT_DIR DIR...           join shard results, one record per run id"},
    {"bench", sb_cmd_bench, "bench [--backend cpu|cuda[:N]] [--seq N] [--layers N] ...  engine speed against GEMM peak and memory bandwidth"},
};

static void usage(FILE *out) {
    fprintf(out, "usage: slimbench COMMAND [flags]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) fprintf(out, "  %s\n", commands[i].usage);
}

int main(int argc, char **argv) {
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "help") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(argv[1], commands[i].name) == 0) return commands[i].run(argc - 2, argv + 2);
    fprintf(stderr, "slimbench: unknown command '%s' (slimbench --help lists them)\n", argv[1]);
    return 2;
}
