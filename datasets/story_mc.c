/* story_mc.c - built-in multiple-choice sets from the story grammar (see story_mc.h). */
#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "story_mc.h"

const char *sb_story_mc_name(sb_story_cue_kind kind) {
    static const char *const names[] = {"agreement", "recall", "arithmetic"};
    return kind >= 0 && kind < SB_STORY_CUE_KINDS ? names[kind] : "unknown";
}

/* Random numbers for one question, seeded from its story's seed (splitmix64). */
static uint64_t next_random(uint64_t *state) {
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static int below(uint64_t *state, int n) { return (int)(next_random(state) % (uint64_t)n); }

typedef struct out_buf {
    char *p;
    size_t n, cap;
} out_buf;

static bool buf_append(out_buf *b, const char *s, size_t n) {
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->n + n + 1) cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) return false;
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
    return true;
}

/* The index of a uniformly chosen cue of `kind`, or -1 when the story has none. */
static int pick_cue(const sb_story *s, sb_story_cue_kind kind, uint64_t *state) {
    int n = 0;
    for (int i = 0; i < s->n_cues; i++) n += s->cue[i].kind == kind && s->cue[i].n_alt > 0;
    if (n == 0) return -1;
    int k = below(state, n);
    for (int i = 0; i < s->n_cues; i++)
        if (s->cue[i].kind == kind && s->cue[i].n_alt > 0 && k-- == 0) return i;
    return -1;
}

/* Choices: gold at a uniform position, the wrong words shuffled into the others. */
static int arrange_choices(const sb_story_cue *c, uint64_t *state, const char **choice) {
    int n = 1 + c->n_alt, gold = below(state, n);
    const char *alt[SB_STORY_MAX_ALTS];
    memcpy(alt, c->alt, sizeof alt);
    for (int i = c->n_alt - 1; i > 0; i--) {
        int j = below(state, i + 1);
        const char *t = alt[i];
        alt[i] = alt[j];
        alt[j] = t;
    }
    for (int i = 0, a = 0; i < n; i++) choice[i] = i == gold ? c->gold : alt[a++];
    return gold;
}

/* One JSONL line for cue c of story s. */
static int question_line(sb_story *s, const sb_story_cue *c, uint64_t *state, out_buf *out, sb_err *err) {
    const char *choice[1 + SB_STORY_MAX_ALTS];
    int gold = arrange_choices(c, state, choice);
    char saved = s->text[c->cut];
    s->text[c->cut] = 0; /* the context ends where the tested word's space begins */
    cJSON *o = cJSON_CreateObject();
    bool ok = o && cJSON_AddStringToObject(o, "context", s->text);
    s->text[c->cut] = saved;
    cJSON *arr = ok ? cJSON_AddArrayToObject(o, "choices") : NULL;
    ok = arr != NULL;
    for (int i = 0; ok && i < 1 + c->n_alt; i++) {
        cJSON *str = cJSON_CreateString(choice[i]);
        ok = str && cJSON_AddItemToArray(arr, str);
        if (!ok) cJSON_Delete(str);
    }
    ok = ok && cJSON_AddNumberToObject(o, "gold", gold);
    char *line = ok ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    ok = line && buf_append(out, line, strlen(line)) && buf_append(out, "\n", 1);
    free(line);
    return ok ? SB_OK : sb_err_set(err, SB_EINTERNAL, "out of memory writing a multiple-choice question");
}

int sb_story_mc_generate(uint64_t seed, sb_story_cue_kind kind, int n, char **jsonl, size_t *len, sb_err *err) {
    *jsonl = NULL;
    *len = 0;
    if (kind < 0 || kind >= SB_STORY_CUE_KINDS || n < 0)
        return sb_err_set(err, SB_EINPUT, "story mc: bad arguments (kind %d, n %d)", (int)kind, n);
    sb_story s = {0};
    out_buf out = {0};
    int rc = buf_append(&out, "", 0) ? SB_OK : sb_err_set(err, SB_EINTERNAL, "out of memory");
    uint64_t index = 0;
    for (int q = 0; q < n && rc == SB_OK;) {
        uint64_t story_seed = sb_story_seed(seed, 1 + (uint64_t)kind, index++);
        rc = sb_story_write(story_seed, &s, err);
        uint64_t state = story_seed ^ 0x5851f42d4c957f2dull;
        int cue = rc == SB_OK ? pick_cue(&s, kind, &state) : -1;
        if (cue < 0) continue;
        rc = question_line(&s, &s.cue[cue], &state, &out, err);
        q++;
    }
    sb_story_free(&s);
    if (rc != SB_OK) {
        free(out.p);
        return rc;
    }
    *jsonl = out.p;
    *len = out.n;
    return SB_OK;
}
