/* test_story_data.c - the built-in data: story corpus, multiple-choice sets
 * and the byte-level BPE trainer.
 *
 * Corpus: deterministic (same seed, same bytes; the committed
 * tests/reference/bpe/corpus.txt pins the bytes across machines and
 * versions), splits disjoint and 90/5/5, agreement by construction.
 * MC sets: load through the mc task's JSONL loader, gold in range and
 * roughly uniform, every question cut from a real story.
 * BPE: the merges and ids of Hugging Face's BpeTrainer on the committed
 * corpus (tests/reference/make_bpe_fixture.py), the saved tokenizer.json
 * loads with sb_tokenizer_load_hf, encodes held-out text to the same ids
 * as Hugging Face and round-trips. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../datasets/bpe_train.h"
#include "../datasets/mc_dataset.h"
#include "../datasets/story_corpus.h"
#include "../datasets/story_mc.h"
#include "check.h"
#include "mapped_file.h"
#include "tokenizer.h"

static const char *bpe_dir = "tests/reference/bpe";

static char *generate(uint64_t seed, int n, int split, size_t *len) {
    sb_err err = {0};
    char *text = NULL;
    if (!test_expect(sb_story_generate(seed, n, split, &text, len, &err) == SB_OK, "%s", err.msg)) return NULL;
    return text;
}

static char *read_file(const char *path, size_t *len) {
    sb_err err = {0};
    char *text = NULL;
    if (!test_expect(sb_read_text_file(path, &text, len, &err) == SB_OK, "%s", err.msg)) return NULL;
    return text;
}

static int count_substr(const char *s, const char *pat) {
    int n = 0;
    for (const char *p = s; (p = strstr(p, pat)) != NULL; p += strlen(pat)) n++;
    return n;
}

/* ---- corpus ------------------------------------------------------------------------------------------- */

static void test_deterministic(void) {
    test_begin("story_deterministic");
    size_t n1, n2, n3, nf;
    char *a = generate(5, 200, SB_STORY_TRAIN, &n1), *b = generate(5, 200, SB_STORY_TRAIN, &n2);
    char *c = generate(6, 200, SB_STORY_TRAIN, &n3);
    if (a && b && c) {
        test_expect(n1 == n2 && memcmp(a, b, n1) == 0, "same seed gave different text");
        test_expect(n1 != n3 || memcmp(a, c, n1) != 0, "seeds 5 and 6 gave the same text");
        test_expect(n1 > 50000, "200 stories are only %zu bytes", n1);
    }
    /* The fixture was written by `slimbench data corpus --stories 20 --seed 7`: the bytes must not drift. */
    char *now = generate(7, 20, SB_STORY_TRAIN, &n1), *fixture = read_file("tests/reference/bpe/corpus.txt", &nf);
    if (now && fixture) test_expect(n1 == nf && memcmp(now, fixture, nf) == 0, "seed 7 no longer gives tests/reference/bpe/corpus.txt");
    free(a);
    free(b);
    free(c);
    free(now);
    free(fixture);
    test_end();
}

/* Splits text into paragraphs in place; returns how many. */
static int paragraphs(char *text, char **out, int max) {
    int n = 0;
    for (char *p = text; p && *p && n < max;) {
        char *end = strstr(p, "\n\n");
        if (end) *end = 0;
        size_t len = strlen(p);
        if (len && p[len - 1] == '\n') p[len - 1] = 0;
        out[n++] = p;
        p = end ? end + 2 : NULL;
    }
    return n;
}

static void test_splits(void) {
    test_begin("story_splits_disjoint");
    size_t len[3];
    char *text[3];
    for (int s = 0; s < 3; s++) text[s] = generate(11, 400, s, &len[s]);
    if (text[0] && text[1] && text[2]) {
        char *train_copy = strdup(text[0]);
        static char *para[3][400];
        int n[3];
        for (int s = 0; s < 3; s++) n[s] = paragraphs(text[s], para[s], 400);
        test_expect(n[0] == 360 && n[1] == 20 && n[2] == 20, "split sizes %d/%d/%d, want 360/20/20", n[0], n[1], n[2]);
        for (int s = 1; s < 3 && train_copy; s++)
            for (int i = 0; i < n[s]; i++) test_expect(!strstr(train_copy, para[s][i]), "split %d story %d is also in train", s, i);
        for (int i = 0; i < n[1]; i++)
            for (int j = 0; j < n[2]; j++) test_expect(strcmp(para[1][i], para[2][j]) != 0, "valid %d == test %d", i, j);
        free(train_copy);
    }
    for (int s = 0; s < 3; s++) free(text[s]);
    test_end();
}

static bool ends_with_s(const char *w) {
    size_t n = strlen(w);
    return n > 0 && w[n - 1] == 's';
}

static bool is_animal(const char *w) {
    static const char *const animals[] = {"dog", "cat", "bird", "rabbit", "horse", "duck", "frog", "goat"};
    for (size_t i = 0; i < sizeof animals / sizeof animals[0]; i++) {
        size_t n = strlen(animals[i]);
        if (strncmp(w, animals[i], n) == 0 && (w[n] == 0 || (w[n] == 's' && w[n + 1] == 0))) return true;
    }
    return false;
}

/* One sentence's words (at most 16), punctuation stripped; returns the count. */
static int sentence_words(const char *s, size_t n, char words[16][32]) {
    int k = 0;
    for (size_t i = 0; i < n && k < 16;) {
        while (i < n && (s[i] == ' ' || s[i] == ',')) i++;
        size_t j = i;
        while (j < n && s[j] != ' ' && s[j] != ',' && s[j] != '.' && s[j] != '?') j++;
        if (j > i && j - i < 32) {
            memcpy(words[k], s + i, j - i);
            words[k++][j - i] = 0;
        }
        i = j + 1;
    }
    return k;
}

/* "The dog(s) [near the X] VERB": a verb ending in s exactly when the animal is singular;
 * "A and B VERB": a plural verb. Returns false on a violation. */
static bool sentence_agrees(char words[16][32], int n) {
    if (n >= 3 && strcmp(words[0], "The") == 0 && is_animal(words[1])) {
        int v = n >= 6 && strcmp(words[2], "near") == 0 ? 5 : 2;
        return ends_with_s(words[1]) != ends_with_s(words[v]);
    }
    if (n >= 4 && strcmp(words[1], "and") == 0) return !ends_with_s(words[3]);
    return true;
}

static void test_agreement_by_construction(void) {
    test_begin("story_agreement");
    size_t len;
    char *t = generate(3, 400, SB_STORY_TRAIN, &len);
    if (t) {
        static const char *const never[] = {"They is",  "They was",  "they was",  "He are",    "She are",   "He were",
                                            "She were", "he were",   "she were",  "children is", "children was",
                                            " a orange", " a old",   " an big",   "one apples", "one eggs",
                                            "one coins", "two apple.", "three egg.", "He have",  "She have"};
        for (size_t i = 0; i < sizeof never / sizeof never[0]; i++)
            test_expect(!strstr(t, never[i]), "the corpus has '%s'", never[i]);
        int checked = 0, bad = 0;
        for (const char *s = t; *s;) {
            const char *end = s + strcspn(s, ".?");
            char words[16][32];
            int n = sentence_words(s, (size_t)(end - s), words);
            if (n >= 3 && (strcmp(words[0], "The") == 0 || strcmp(words[1], "and") == 0)) checked++;
            if (!sentence_agrees(words, n)) bad++;
            s = *end ? end + 1 : end;
        }
        test_expect(bad == 0 && checked > 200, "%d of %d subject-verb sentences disagree", bad, checked);
        test_expect(count_substr(t, "Now ") >= 360 && count_substr(t, "Where is ") > 100,
                    "too few counting (%d) or recall (%d) sentences", count_substr(t, "Now "), count_substr(t, "Where is "));
        test_expect(count_substr(t, "\n\n") == 359, "%d paragraph breaks, want 359", count_substr(t, "\n\n"));
    }
    free(t);
    test_end();
}

/* A restated fact never contradicts its statement: "X's A is C" gives the
 * same C wherever it appears in a story (the statement "Mia's dog is brown",
 * the restatements "Mia's hat is red" and "The colour of Mia's dog is
 * brown"), so a recall question has one right answer. */
static void test_restatements_agree(void) {
    test_begin("story_restatements_agree");
    size_t len;
    char *t = generate(11, 300, SB_STORY_TRAIN, &len);
    int facts = 0;
    for (const char *para = t; t && *para;) {
        const char *stop = strstr(para, "\n\n");
        size_t n = stop ? (size_t)(stop - para) : strlen(para);
        /* every "X's A is C" of the story (not "The name of X's A is N"): one C per "X's A" */
        char seen_key[16][48], seen_value[16][16];
        int n_seen = 0;
        for (const char *q = para; (q = strstr(q, "'s ")) && (size_t)(q - para) < n; q += 3) {
            const char *name = q;
            while (name > para && name[-1] != ' ') name--;
            char key[48], noun[16], value[16];
            bool named = name - para >= 8 && memcmp(name - 8, "name of ", 8) == 0;
            if (named || sscanf(q + 3, "%15[a-z] is %15[a-z]", noun, value) != 2 || strcmp(value, "called") == 0) continue;
            snprintf(key, sizeof key, "%.*s's %s", (int)(q - name), name, noun);
            int i = 0;
            while (i < n_seen && strcmp(seen_key[i], key) != 0) i++;
            if (i == n_seen) { /* the first time: remember it */
                if (n_seen < 16) {
                    snprintf(seen_key[n_seen], sizeof seen_key[0], "%s", key);
                    snprintf(seen_value[n_seen++], sizeof seen_value[0], "%s", value);
                }
                continue;
            }
            facts++;
            test_expect(strcmp(seen_value[i], value) == 0, "'%s' is both %s and %s", key, seen_value[i], value);
        }
        para += n;
        while (*para == '\n') para++;
    }
    test_expect(facts > 80, "only %d restated facts", facts); /* 112 for this seed */
    free(t);
    test_end();
}

/* ---- copy games -------------------------------------------------------------------------------------------- */

/* The text of [from, to) as a NUL-terminated copy in buf. */
static const char *span(char *buf, size_t cap, const char *from, const char *to) {
    size_t n = (size_t)(to - from) < cap - 1 ? (size_t)(to - from) : cap - 1;
    memcpy(buf, from, n);
    buf[n] = 0;
    return buf;
}

/* Every restarted echo "says: L. X says the end: M." has M a proper suffix of L. */
static int check_echoes(const char *para) {
    int n = 0;
    for (const char *q = para; (q = strstr(q, " says the end:")); q++, n++) {
        const char *said = q;
        while (said > para && strncmp(said, " says:", 6) != 0) said--;
        char first[512], second[512];
        span(first, sizeof first, said + 6, strchr(said + 6, '.'));
        span(second, sizeof second, q + 14, strchr(q + 14, '.'));
        size_t a = strlen(first), b = strlen(second);
        test_expect(b > 0 && b < a && strcmp(first + a - b, second) == 0, "'%s' is not the end of '%s'", second, first);
    }
    return n;
}

/* Every fact told again ("X's N is C.") is one told first, and in the same words. */
static int check_told_again(const char *para) {
    int n = 0;
    for (const char *q = para; (q = strstr(q, " tells a story:")); q++) {
        const char *again = strstr(q, " tells it again:");
        if (!test_expect(again != NULL, "a story told once: %.80s", q)) return n;
        char told[1024], fact[128];
        span(told, sizeof told, q, again);
        for (const char *f = again + 16; *f == ' ' && f[1] != '\n';) {
            const char *end = strchr(f, '.');
            span(fact, sizeof fact, f, end + 1);
            if (strstr(fact, " says") || strstr(fact, " tells") || !strstr(fact, "'s ")) break; /* the next game */
            test_expect(strstr(told, fact) != NULL, "'%s' was not told first in '%s'", fact, told);
            n++;
            f = end + 1;
        }
    }
    return n;
}

/* "X says: k v, k v. Y says: ..." pairs: said again as the same set in another order. */
static int check_pairs(const char *para) {
    int n = 0;
    for (const char *q = para; (q = strstr(q, " says: ")); q++) {
        const char *end = strchr(q, '.');
        char first[256], second[256];
        span(first, sizeof first, q + 7, end);
        if (!strchr(first, ',') || strncmp(end, ". ", 2) != 0) continue;   /* an echo */
        const char *next = strstr(end, " says: ");
        if (!test_expect(next != NULL, "pairs said once: %s", first)) return n;
        span(second, sizeof second, next + 7, strchr(next + 7, '.'));
        test_expect(strlen(first) == strlen(second), "'%s' against '%s'", first, second);
        for (char *pair = strtok(second, ","); pair; pair = strtok(NULL, ",")) {
            while (*pair == ' ') pair++;
            char probe[64];
            snprintf(probe, sizeof probe, "%s,", pair);
            char with_comma[260];
            snprintf(with_comma, sizeof with_comma, "%s,", first);
            test_expect(strstr(with_comma, probe) != NULL, "pair '%s' not in '%s'", pair, first);
            n++;
        }
        q = next + 7;
    }
    return n;
}

static void test_games(void) {
    test_begin("story_copy_games");
    sb_err err = {0};
    char *a = NULL, *b = NULL;
    size_t na = 0, nb = 0;
    if (test_expect(sb_story_games_generate(3, 400, SB_STORY_TRAIN, &a, &na, &err) == SB_OK &&
                        sb_story_games_generate(3, 400, SB_STORY_TRAIN, &b, &nb, &err) == SB_OK,
                    "%s", err.msg)) {
        test_expect(na == nb && memcmp(a, b, na) == 0, "same seed gave different games");
        int echoes = 0, retold = 0, pairs = 0;
        for (char *para = a; *para;) {
            char *stop = strstr(para, "\n\n");
            if (stop) *stop = 0;
            echoes += check_echoes(para);
            retold += check_told_again(para);
            pairs += check_pairs(para);
            para = stop ? stop + 2 : para + strlen(para);
        }
        /* 360 paragraphs of 3-5 games, a quarter each kind of echo, told again, pairs */
        test_expect(echoes > 300 && retold > 300 && pairs > 300, "echoes %d, facts told again %d, pairs %d", echoes,
                    retold, pairs);
    }
    free(a);
    free(b);
    test_end();
}

/* With games mixed in, the stories are the same bytes in the same order; about P % of them
 * are followed by a games paragraph, and 0 % is the plain corpus. */
static void test_stories_with_games(void) {
    test_begin("story_corpus_with_games");
    sb_err err = {0};
    size_t n_plain = 0, n_none = 0, n_mixed = 0;
    char *plain = generate(4, 400, SB_STORY_TRAIN, &n_plain), *none = NULL, *mixed = NULL;
    if (plain && test_expect(sb_story_generate_with_games(4, 400, 0, SB_STORY_TRAIN, &none, &n_none, &err) == SB_OK &&
                                 sb_story_generate_with_games(4, 400, 30, SB_STORY_TRAIN, &mixed, &n_mixed, &err) == SB_OK,
                             "%s", err.msg)) {
        test_expect(n_none == n_plain && memcmp(none, plain, n_plain) == 0, "0 %% games changed the corpus");
        size_t kept = 0;
        int stories = 0, games = 0;
        for (char *para = mixed; *para;) {
            char *stop = strstr(para, "\n\n");
            size_t n = stop ? (size_t)(stop - para) : strlen(para);
            char head[64];
            span(head, sizeof head, para, para + (n < 60 ? n : 60));
            if (strstr(head, " says:") || strstr(head, " tells a story:")) games++;
            else {
                test_expect(kept + n <= n_plain && memcmp(plain + kept, para, n) == 0, "story %d differs", stories);
                kept += n + 2;
                stories++;
            }
            para += n;
            while (*para == '\n') para++;
        }
        test_expect(stories == 360 && games > 75 && games < 145, "%d stories, %d games paragraphs", stories, games);
    }
    free(plain);
    free(none);
    free(mixed);
    test_end();
}

/* ---- multiple choice --------------------------------------------------------------------------------------- */

static void test_mc_set(sb_story_cue_kind kind, int want_choices) {
    char name[64];
    snprintf(name, sizeof name, "story_mc_%s", sb_story_mc_name(kind));
    test_begin(name);
    enum { N = 400 };
    sb_err err = {0};
    char *jsonl = NULL, *again = NULL, path[] = "/tmp/sb_story_mc_XXXXXX";
    size_t len, len2;
    int fd = mkstemp(path);
    bool ok = test_expect(fd >= 0, "mkstemp failed") &&
              test_expect(sb_story_mc_generate(9, kind, N, &jsonl, &len, &err) == SB_OK, "%s", err.msg) &&
              test_expect(sb_story_mc_generate(9, kind, N, &again, &len2, &err) == SB_OK, "%s", err.msg) &&
              test_expect(len == len2 && memcmp(jsonl, again, len) == 0, "not deterministic") &&
              test_expect(write(fd, jsonl, len) == (ssize_t)len, "write failed");
    if (fd >= 0) close(fd);
    sb_mc_dataset *d = NULL;
    if (ok && test_expect(sb_mc_load(path, SB_MC_JSONL, 0, &d, &err) == SB_OK, "%s", err.msg)) {
        int hist[4] = {0};
        test_expect(d->n_docs == N, "%d documents, want %d", d->n_docs, N);
        for (int i = 0; i < d->n_docs; i++) {
            const sb_mc_doc *doc = &d->docs[i];
            if (!test_expect(doc->n_choices == want_choices && doc->gold >= 0 && doc->gold < doc->n_choices,
                             "doc %d: %d choices, gold %d", i, doc->n_choices, doc->gold))
                break;
            hist[doc->gold]++;
            for (int j = 0; j < doc->n_choices; j++)
                for (int k = j + 1; k < doc->n_choices; k++)
                    test_expect(strcmp(doc->choice[j], doc->choice[k]) != 0, "doc %d repeats a choice", i);
        }
        for (int g = 0; g < want_choices; g++) {
            double expect = (double)N / want_choices;
            test_expect(hist[g] > 0.75 * expect && hist[g] < 1.25 * expect, "gold %d chosen %d times of %d", g, hist[g], N);
        }
    }
    sb_mc_free(d);
    unlink(path);
    free(jsonl);
    free(again);
    test_end();
}

/* The contexts are cut from stories: context + " " + gold starts a sentence the corpus grammar wrote. */
static void test_mc_example(void) {
    test_begin("story_mc_arithmetic_example");
    sb_err err = {0};
    char *jsonl = NULL;
    size_t len;
    if (test_expect(sb_story_mc_generate(1, SB_STORY_CUE_ARITHMETIC, 1, &jsonl, &len, &err) == SB_OK, "%s", err.msg)) {
        cJSON *o = cJSON_Parse(jsonl);
        const cJSON *ctx = cJSON_GetObjectItemCaseSensitive(o, "context");
        const cJSON *choices = cJSON_GetObjectItemCaseSensitive(o, "choices");
        const cJSON *gold = cJSON_GetObjectItemCaseSensitive(o, "gold");
        test_expect(cJSON_IsString(ctx) && cJSON_GetArraySize(choices) == 4 && cJSON_IsNumber(gold), "bad JSON: %s", jsonl);
        if (cJSON_IsString(ctx)) {
            size_t n = strlen(ctx->valuestring);
            test_expect(n > 9 && strcmp(ctx->valuestring + n - 4, " has") == 0 &&
                            strstr(ctx->valuestring, "Now "),
                        "context does not end with 'Now NAME has': %s", ctx->valuestring);
        }
        cJSON_Delete(o);
    }
    free(jsonl);
    test_end();
}

/* ---- BPE ------------------------------------------------------------------------------------------------------- */

static cJSON *load_json(const char *path) {
    size_t n;
    char *text = read_file(path, &n);
    cJSON *j = text ? cJSON_Parse(text) : NULL;
    free(text);
    test_expect(j != NULL, "%s: not JSON", path);
    return j;
}

static void compare_with_hf(const sb_bpe_vocab *v, const cJSON *ref) {
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(ref, "vocab");
    const cJSON *merges = cJSON_GetObjectItemCaseSensitive(ref, "merges");
    test_expect(cJSON_GetArraySize(vocab) == v->n_tokens, "%d tokens, Hugging Face %d", v->n_tokens, cJSON_GetArraySize(vocab));
    test_expect(cJSON_GetArraySize(merges) == v->n_merges, "%d merges, Hugging Face %d", v->n_merges, cJSON_GetArraySize(merges));
    for (int32_t i = 0; i < v->n_tokens; i++) {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(vocab, v->token[i]);
        if (!test_expect(cJSON_IsNumber(id) && id->valueint == i, "token %d '%s': Hugging Face id %d", i, v->token[i],
                         cJSON_IsNumber(id) ? id->valueint : -1))
            return;
    }
    char line[512];
    for (int32_t i = 0; i < v->n_merges && i < cJSON_GetArraySize(merges); i++) {
        snprintf(line, sizeof line, "%s %s", v->token[v->merge[i][0]], v->token[v->merge[i][1]]);
        const cJSON *m = cJSON_GetArrayItem(merges, i);
        if (!test_expect(cJSON_IsString(m) && strcmp(m->valuestring, line) == 0, "merge %d: '%s', Hugging Face '%s'", i, line,
                         cJSON_IsString(m) ? m->valuestring : "?"))
            return;
    }
}

/* Saves v, loads it with slimbench's loader and encodes held-out text. */
static void check_saved_tokenizer(const sb_bpe_vocab *v, const cJSON *ref, const char *heldout, size_t heldout_len) {
    char dir[] = "/tmp/sb_bpe_XXXXXX", json[64], config[64];
    sb_err err = {0};
    sb_tokenizer *tok = NULL;
    if (!test_expect(mkdtemp(dir) != NULL, "mkdtemp failed")) return;
    snprintf(json, sizeof json, "%s/tokenizer.json", dir);
    snprintf(config, sizeof config, "%s/tokenizer_config.json", dir);
    if (test_expect(sb_bpe_save(v, dir, &err) == SB_OK, "%s", err.msg) &&
        test_expect(sb_tokenizer_load_hf(dir, &tok, &err) == SB_OK, "%s", err.msg)) {
        int32_t *ids = NULL, *bos_ids = NULL;
        size_t n = 0, n_bos = 0;
        char *back = NULL;
        size_t back_len = 0;
        const cJSON *want = cJSON_GetObjectItemCaseSensitive(ref, "heldout_ids");
        if (test_expect(sb_tokenizer_encode(tok, heldout, heldout_len, false, &ids, &n, &err) == SB_OK, "%s", err.msg)) {
            bool same = (int)n == cJSON_GetArraySize(want);
            for (size_t i = 0; same && i < n; i++) same = cJSON_GetArrayItem(want, (int)i)->valueint == ids[i];
            test_expect(same, "held-out ids differ from Hugging Face (%zu vs %d ids)", n, cJSON_GetArraySize(want));
            test_expect(sb_tokenizer_decode(tok, ids, n, &back, &back_len, &err) == SB_OK && back_len == heldout_len &&
                            memcmp(back, heldout, heldout_len) == 0,
                        "decode(encode(heldout)) != heldout");
        }
        test_expect(sb_tokenizer_encode(tok, "Tom runs.", 9, true, &bos_ids, &n_bos, &err) == SB_OK && n_bos > 1 &&
                        bos_ids[0] == 0 && sb_tokenizer_bos(tok) == 0 && sb_tokenizer_eos(tok) == 0,
                    "add_special does not put <|endoftext|> (0) first");
        free(ids);
        free(bos_ids);
        free(back);
    }
    sb_tokenizer_free(tok);
    unlink(json);
    unlink(config);
    rmdir(dir);
}

static void test_bpe_against_hf(int vocab_size) {
    char name[64], path[128];
    snprintf(name, sizeof name, "bpe_matches_hf_v%d", vocab_size);
    test_begin(name);
    snprintf(path, sizeof path, "%s/hf_v%d.json", bpe_dir, vocab_size);
    size_t n_corpus, n_heldout;
    char *corpus = read_file("tests/reference/bpe/corpus.txt", &n_corpus);
    char *heldout = read_file("tests/reference/bpe/heldout.txt", &n_heldout);
    cJSON *ref = load_json(path);
    sb_bpe_vocab v = {0}, again = {0};
    sb_err err = {0};
    if (corpus && heldout && ref && test_expect(sb_bpe_train(corpus, n_corpus, vocab_size, &v, &err) == SB_OK, "%s", err.msg)) {
        compare_with_hf(&v, ref);
        check_saved_tokenizer(&v, ref, heldout, n_heldout);
        test_expect(sb_bpe_train(corpus, n_corpus, vocab_size, &again, &err) == SB_OK && again.n_merges == v.n_merges &&
                        memcmp(again.merge, v.merge, (size_t)v.n_merges * sizeof *v.merge) == 0,
                    "training twice gave different merges");
    }
    sb_bpe_vocab_free(&v);
    sb_bpe_vocab_free(&again);
    cJSON_Delete(ref);
    free(corpus);
    free(heldout);
    test_end();
}

static void test_bpe_bad_input(void) {
    test_begin("bpe_bad_vocab_size");
    sb_bpe_vocab v = {0};
    sb_err err = {0};
    test_expect(sb_bpe_train("abc", 3, 100, &v, &err) == SB_EINPUT && strstr(err.msg, "vocabulary size"), "got '%s'", err.msg);
    sb_err err2 = {0};
    /* Invalid UTF-8 and an empty input train without failing. */
    test_expect(sb_bpe_train("\xff\xfe ab ab\n", 10, 300, &v, &err2) == SB_OK && v.n_tokens > 257, "%s", err2.msg);
    sb_bpe_vocab_free(&v);
    test_expect(sb_bpe_train("", 0, 300, &v, &err2) == SB_OK && v.n_tokens == 257 && v.n_merges == 0, "%s", err2.msg);
    sb_bpe_vocab_free(&v);
    test_end();
}

int main(void) {
    test_deterministic();
    test_splits();
    test_agreement_by_construction();
    test_restatements_agree();
    test_games();
    test_stories_with_games();
    test_mc_set(SB_STORY_CUE_AGREEMENT, 2);
    test_mc_set(SB_STORY_CUE_RECALL, 4);
    test_mc_set(SB_STORY_CUE_ARITHMETIC, 4);
    test_mc_example();
    test_bpe_against_hf(400);
    test_bpe_against_hf(1000);
    test_bpe_bad_input();
    return test_status();
}
