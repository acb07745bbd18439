/* story_corpus.h - the built-in corpus: a deterministic generator of
 * simple English stories.
 *
 * A story is one paragraph about two or three people (names with a
 * gender, so he/she and brother/sister agree), their pets (animal,
 * colour, size, name), their things (an item with a colour) and places,
 * with three regularities a small language model can learn:
 *   - agreement: subjects are singular or plural ("The dog runs", "The
 *     dogs near the tree run", "Tom and Mia play", "They are happy"),
 *     nouns agree with numbers ("one apple", "two apples"), a/an with the
 *     next word;
 *   - counting: "Tom has three apples. He gives one to Mia. Now Tom has
 *     two apples.";
 *   - recall: facts stated early are restated at the end in a fixed form
 *     ("Mia's dog is brown. ... The colour of Mia's dog is brown.").
 *
 * Every story comes from its own 64-bit seed through its own splitmix64
 * stream (integer arithmetic only), so the same seed gives the same bytes
 * on every machine.  Story i of a corpus uses sb_story_seed(seed,
 * SB_STORY_STREAM_CORPUS, i) and belongs to the split sb_story_split_of(i):
 * of every 20 consecutive indices, 18 are train, one valid, one test.
 *
 * The generator also marks cue points for the built-in multiple-choice
 * sets (story_mc.h): the byte offset where a word that tests one
 * regularity starts, the word and wrong words of the same type. */
#ifndef SB_STORY_CORPUS_H
#define SB_STORY_CORPUS_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"

enum { SB_STORY_TRAIN = 0, SB_STORY_VALID = 1, SB_STORY_TEST = 2 };

/* Seed streams: the corpus uses stream 0, each MC set its own (story_mc.c),
 * so an MC story is never one of the corpus's stories for the same seed. */
enum { SB_STORY_STREAM_CORPUS = 0, SB_STORY_STREAM_GAMES = 100 };

/* The stories of one split among stories 0..n_stories-1, each followed by
 * "\n\n" except the last, which ends with "\n".  *text is malloc'ed and
 * NUL-terminated (an empty split gives ""). */
int sb_story_generate(uint64_t seed, int n_stories, int split, char **text, size_t *len, sb_err *err);

/* The same stories, each followed with probability games_percent by a paragraph of copy games
 * (0 gives sb_story_generate's bytes). */
int sb_story_generate_with_games(uint64_t seed, int n_stories, int games_percent, int split, char **text, size_t *len,
                                 sb_err *err);

/* Copy games alone: paragraphs 0..n_paragraphs-1 of the split, split by index as the stories.
 * A paragraph is 3-5 games in the grammar's words whose second halves can only be predicted by
 * copying from the first: a list said again from a random word on (its words distinct, or
 * drawn from a few words so that two must match), facts "Nora's horse is red." told again in
 * another order, "cup red, horse Bella" pairs said again in another order.  The built-in model
 * learns in-context lookup on these before the stories (datasets/builtin/README.md). */
int sb_story_games_generate(uint64_t seed, int n_paragraphs, int split, char **text, size_t *len, sb_err *err);

/* SB_STORY_TRAIN, SB_STORY_VALID or SB_STORY_TEST for story index i >= 0. */
int sb_story_split_of(int64_t index);

/* The seed of story `index` of a stream. */
uint64_t sb_story_seed(uint64_t seed, uint64_t stream, uint64_t index);

/* ---- one story with its cue points (for story_mc.c) ------------------------ */

typedef enum { SB_STORY_CUE_AGREEMENT, SB_STORY_CUE_RECALL, SB_STORY_CUE_ARITHMETIC, SB_STORY_CUE_KINDS } sb_story_cue_kind;

#define SB_STORY_MAX_CUES 32
#define SB_STORY_MAX_ALTS 3

typedef struct sb_story_cue {
    sb_story_cue_kind kind;
    size_t cut;                         /* text[0..cut) is the context; text[cut] is the space before gold */
    const char *gold;                   /* the word the story has there (static string) */
    const char *alt[SB_STORY_MAX_ALTS]; /* wrong words of the same type, distinct from gold and each other */
    int n_alt;
} sb_story_cue;

typedef struct sb_story {
    char *text;                         /* NUL-terminated; reused across sb_story_write calls */
    size_t len, cap;
    sb_story_cue cue[SB_STORY_MAX_CUES];
    int n_cues;
    int oom;                            /* set when growing text failed */
} sb_story;

/* Writes the story of story_seed into s (zero-initialise s before the first call). */
int sb_story_write(uint64_t story_seed, sb_story *s, sb_err *err);

/* Writes one paragraph of copy games into s (no cues). */
int sb_story_games_write(uint64_t games_seed, sb_story *s, sb_err *err);
void sb_story_free(sb_story *s);

#endif
