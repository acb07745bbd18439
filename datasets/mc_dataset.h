/* mc_dataset.h - zero-shot multiple-choice datasets as lm-eval builds them.
 *
 * Each loader reads one dataset in the JSONL layout its Hugging Face
 * release publishes (one JSON object a line) and turns every document into
 * the loglikelihood requests of lm-eval's task definition (PROTOCOLS.md
 * §6): a context and a continuation per choice, the doc_to_choice strings
 * that acc_norm/acc_bytes divide by, and the gold index.  The strings are
 * exactly lm-eval's, target delimiter included, so the scorer never needs
 * to know which dataset it is scoring.
 *
 * Formats and what they read:
 *   piqa        goal, sol1, sol2, label
 *   arc         question, choices{text,label}, answerKey
 *   hellaswag   activity_label, ctx_a, ctx_b, endings, label
 *   winogrande  sentence, option1, option2, answer ("1"/"2")
 *   boolq       passage, question, label
 *   copa        premise, choice1, choice2, question ("cause"/"effect"), label
 *   lambada     text
 *   openbookqa  question_stem, choices{text,label}, answerKey
 *   jsonl       context, choices[], gold   (user tasks: ctx + " " + choice)
 *
 * Every error is SB_EINPUT "FILE:LINE: reason". */
#ifndef SB_MC_DATASET_H
#define SB_MC_DATASET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

typedef enum {
    SB_MC_PIQA,
    SB_MC_ARC,
    SB_MC_HELLASWAG,
    SB_MC_WINOGRANDE,
    SB_MC_BOOLQ,
    SB_MC_COPA,
    SB_MC_LAMBADA,
    SB_MC_OPENBOOKQA,
    SB_MC_JSONL,
} sb_mc_format;

/* The "a|b|c" list of format names, for a parameter's choices. */
#define SB_MC_FORMATS "piqa|arc|hellaswag|winogrande|boolq|copa|lambada|openbookqa|jsonl"

/* One loglikelihood request: lm-eval's (context, continuation) pair. */
typedef struct sb_mc_request {
    char *context;
    char *continuation;  /* delimiter included: " " + choice, COPA's "  " + ..., LAMBADA's " " + word */
} sb_mc_request;

typedef struct sb_mc_doc {
    int line;            /* 1-based line of the file it came from */
    int n_choices;       /* requests; 1 for LAMBADA */
    sb_mc_request *req;  /* [n_choices] */
    char **choice;       /* [n_choices] doc_to_choice strings (no delimiter): the acc_norm lengths */
    int gold;            /* index into req; 0 for LAMBADA */
} sb_mc_doc;

typedef struct sb_mc_dataset {
    sb_mc_format format;
    int n_docs;
    sb_mc_doc *docs;
    uint64_t hash;       /* FNV-1a 64 of the whole file's bytes */
} sb_mc_dataset;

/* "piqa" -> SB_MC_PIQA; SB_EINPUT for an unknown name. */
int sb_mc_format_parse(const char *name, sb_mc_format *out, sb_err *err);
const char *sb_mc_format_name(sb_mc_format f);
/* lm-eval's metadata.version of the task ("1.0"; BoolQ "2.0"). */
const char *sb_mc_task_version(sb_mc_format f);
/* Whether lm-eval's task lists acc_norm (piqa, arc, hellaswag, openbookqa; and user tasks). */
bool sb_mc_has_acc_norm(sb_mc_format f);

/* Reads the first `limit` documents of path (all when limit <= 0). */
int sb_mc_load(const char *path, sb_mc_format f, int limit, sb_mc_dataset **out, sb_err *err);
void sb_mc_free(sb_mc_dataset *d);

/* Python's str.rstrip(): the length of s[0..n) without trailing whitespace
 * (str.isspace's definition, so newlines and U+00A0 too). */
size_t sb_mc_rstrip_len(const char *s, size_t n);
/* Python's len(): Unicode code points (an ill-formed byte counts as one). */
size_t sb_mc_codepoints(const char *s);

/* HellaSwag's preprocess (PROTOCOLS.md §6), malloc'ed; NULL when out of memory. */
char *sb_mc_hellaswag_preprocess(const char *text);

#endif
