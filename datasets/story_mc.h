/* story_mc.h - the built-in zero-shot multiple-choice sets, drawn from the
 * story grammar of story_corpus.h.
 *
 *   agreement   the verb form that agrees with the subject (2 choices:
 *               "The dogs near the tree" -> run / runs);
 *   recall      a fact stated earlier in the story, restated at its end
 *               ("... The colour of Mia's dog is" -> brown); the wrong
 *               choices are values of the same type, first those the story
 *               gave other people or things (4 choices);
 *   arithmetic  the count after a counting episode ("Tom has three apples.
 *               He gives one to Mia. Now Tom has" -> two); the wrong
 *               choices are what likely mistakes give: the starting count,
 *               the opposite operation, one off (4 choices).
 *
 * A question is the story text up to the word being tested (the story's
 * own sentence, cut just before the word) and that word among wrong words
 * of the same type, in the generic JSONL schema the mc task reads with
 * format=jsonl: {"context": str, "choices": [str], "gold": int}, one
 * object a line (the scorer appends " " + choice to the context).
 *
 * Seeds: set k (0 agreement, 1 recall, 2 arithmetic) draws its stories from
 * stream 1 + k of sb_story_seed, the corpus from stream 0, so for the same
 * seed no MC story is one of the corpus's stories (train, valid or test);
 * they are fresh draws from the same grammar.  Question q takes the next
 * story of the stream that has a cue of the set's kind, one of its cues
 * uniformly, and a gold position uniform over the choices. */
#ifndef SB_STORY_MC_H
#define SB_STORY_MC_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "story_corpus.h"

/* "agreement", "recall", "arithmetic". */
const char *sb_story_mc_name(sb_story_cue_kind kind);

/* n questions of one set as JSONL (*jsonl malloc'ed, NUL-terminated). */
int sb_story_mc_generate(uint64_t seed, sb_story_cue_kind kind, int n, char **jsonl, size_t *len, sb_err *err);

#endif
