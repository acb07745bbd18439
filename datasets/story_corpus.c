/* story_corpus.c - the built-in story generator (see story_corpus.h).
 *
 * A story is built in four parts: introductions, facts about each
 * person's pet and item, a shuffled middle (activity sentences that carry
 * the agreement cues, a counting episode, visits to places) and an ending
 * that restates some of the facts in fixed forms (the recall cues).  All
 * word lists are constant tables; the only state is the story's own
 * random stream and the world it describes. */
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "story_corpus.h"

/* ---- random stream ---------------------------------------------------------------------------- */

typedef struct rng {
    uint64_t state;
} rng;

static uint64_t splitmix64(uint64_t *state) {
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Uniform in [0, n) for small n; the modulo bias (n / 2^64) is irrelevant here. */
static int below(rng *r, int n) { return (int)(splitmix64(&r->state) % (uint64_t)n); }

static bool chance(rng *r, int percent) { return below(r, 100) < percent; }

/* Fisher-Yates. */
static void shuffle(rng *r, int *a, int n) {
    for (int i = n - 1; i > 0; i--) {
        int j = below(r, i + 1), t = a[i];
        a[i] = a[j];
        a[j] = t;
    }
}

uint64_t sb_story_seed(uint64_t seed, uint64_t stream, uint64_t index) {
    uint64_t s = seed;
    uint64_t a = splitmix64(&s);
    s = a ^ (stream * 0xd1b54a32d192ed03ull);
    uint64_t b = splitmix64(&s);
    s = b ^ (index * 0x8cb92ba72f3d8dd7ull);
    return splitmix64(&s);
}

int sb_story_split_of(int64_t index) {
    int64_t r = index % 20;
    return r == 18 ? SB_STORY_VALID : r == 19 ? SB_STORY_TEST : SB_STORY_TRAIN;
}

/* ---- vocabulary -------------------------------------------------------------------------------- */

typedef struct noun {
    const char *one, *many;
} noun;

typedef struct verb {
    const char *one, *many; /* third person singular, plural */
} verb;

#define COUNT(a) ((int)(sizeof(a) / sizeof((a)[0])))

static const char *const boys[] = {"Tom", "Sam", "Ben", "Leo", "Jack", "Dan", "Paul", "Tim", "Ned", "Finn", "Hugo", "Owen"};
static const char *const girls[] = {"Mia", "Anna", "Lily", "Emma", "Sara", "Kate", "Lucy", "Rosa", "Nora", "Eva", "Ruby", "Zoe"};
static const noun animals[] = {{"dog", "dogs"},   {"cat", "cats"},   {"bird", "birds"}, {"rabbit", "rabbits"},
                               {"horse", "horses"}, {"duck", "ducks"}, {"frog", "frogs"}, {"goat", "goats"}};
static const noun items[] = {{"kite", "kites"}, {"ball", "balls"}, {"hat", "hats"},   {"cup", "cups"},
                             {"book", "books"}, {"box", "boxes"},  {"bike", "bikes"}, {"scarf", "scarves"}};
/* Things that are counted; the first N_EDIBLE can be eaten. */
static const noun things[] = {{"apple", "apples"},   {"pear", "pears"},   {"cookie", "cookies"}, {"egg", "eggs"},
                              {"cherry", "cherries"}, {"shell", "shells"}, {"coin", "coins"},     {"stone", "stones"},
                              {"marble", "marbles"}, {"flower", "flowers"}};
#define N_EDIBLE 5
static const noun attractors[] = {{"tree", "trees"}, {"house", "houses"}, {"boat", "boats"},
                                  {"rock", "rocks"}, {"fence", "fences"}, {"bench", "benches"}};
static const char *const colours[] = {"red", "blue", "green", "yellow", "brown", "black", "white", "pink", "orange", "grey"};
static const char *const sizes[] = {"big", "small", "little", "tiny", "fat", "old", "young"};
static const char *const pet_names[] = {"Rex", "Bella", "Coco", "Spot", "Luna", "Pip", "Daisy", "Milo", "Ziggy", "Bobo", "Fluffy", "Sunny"};
static const char *const places[] = {"park", "garden", "river", "forest", "market", "beach", "school", "farm", "lake", "hill"};
static const char *const numbers[] = {"zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"};
static const verb person_verbs[] = {{"runs", "run"},     {"jumps", "jump"},   {"plays", "play"},   {"sings", "sing"},
                                    {"walks", "walk"},   {"dances", "dance"}, {"laughs", "laugh"}, {"smiles", "smile"},
                                    {"reads", "read"},   {"waits", "wait"}};
static const verb animal_verbs[] = {{"runs", "run"}, {"jumps", "jump"}, {"sleeps", "sleep"}, {"plays", "play"},
                                    {"eats", "eat"}, {"swims", "swim"}, {"hides", "hide"}};
static const char *const adverbials[] = {"in the park", "near the river", "every day",     "after lunch",  "at home",
                                         "all morning", "in the garden",  "very fast",     "with a ball",  "under the tree"};
static const char *const moods[] = {"happy", "tired", "hungry", "sad", "sleepy", "busy", "excited"};
static const verb be_now = {"is", "are"}, be_past = {"was", "were"};

#define MAX_PEOPLE 3

/* ---- the world a story describes ------------------------------------------------------------- */

typedef struct person {
    const char *name;
    bool female;
    int pet, pet_colour, pet_name; /* indices; -1 when the story has none */
    int item, item_colour;
    int place;
    int thing, count;              /* counting episode: final count of things[thing] */
} person;

typedef struct world {
    rng r;
    sb_story *s;
    person p[MAX_PEOPLE];
    int n;
    int last;  /* the person mentioned last: what he/she refers to */
} world;

static const char *he(const person *p) { return p->female ? "she" : "he"; }
static const char *He(const person *p) { return p->female ? "She" : "He"; }
static const char *him(const person *p) { return p->female ? "her" : "him"; }

/* "a" or "an" for the word that follows. */
static const char *article(const char *next) { return strchr("aeiou", next[0]) ? "an" : "a"; }

static const char *count_noun(const noun *n, int k) { return k == 1 ? n->one : n->many; }

/* ---- writing text and cues ---------------------------------------------------------------------- */

static void append(sb_story *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void append(sb_story *s, const char *fmt, ...) {
    if (s->oom) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        size_t room = s->cap - s->len;
        int n = vsnprintf(s->text ? s->text + s->len : NULL, room, fmt, ap);
        va_end(ap);
        if (n < 0) {
            s->oom = 1;
            return;
        }
        if ((size_t)n < room) {
            s->len += (size_t)n;
            return;
        }
        size_t cap = s->cap ? s->cap * 2 : 1024;
        while (cap < s->len + (size_t)n + 1) cap *= 2;
        char *t = realloc(s->text, cap);
        if (!t) {
            s->oom = 1;
            return;
        }
        s->text = t;
        s->cap = cap;
    }
}

/* Starts a sentence: a space unless it is the story's first. */
static void sentence_gap(sb_story *s) {
    if (s->len > 0) append(s, " ");
}

/* Writes " word" and records a cue at the space before it. */
static sb_story_cue *cue_word(sb_story *s, sb_story_cue_kind kind, const char *word) {
    sb_story_cue *c = NULL;
    if (s->n_cues < SB_STORY_MAX_CUES) {
        c = &s->cue[s->n_cues++];
        memset(c, 0, sizeof *c);
        c->kind = kind;
        c->cut = s->len;
        c->gold = word;
    }
    append(s, " %s", word);
    return c;
}

static bool listed(const char *const *list, int n, const char *w) {
    for (int i = 0; i < n; i++)
        if (strcmp(list[i], w) == 0) return true;
    return false;
}

static void add_alt(sb_story_cue *c, const char *w) {
    if (!c || c->n_alt >= SB_STORY_MAX_ALTS || strcmp(w, c->gold) == 0 || listed(c->alt, c->n_alt, w)) return;
    c->alt[c->n_alt++] = w;
}

/* Fills the cue's wrong words up to the maximum from a table, at random. */
static void fill_alts(rng *r, sb_story_cue *c, const char *const *table, int n) {
    while (c && c->n_alt < SB_STORY_MAX_ALTS && c->n_alt < n - 1) add_alt(c, table[below(r, n)]);
}

/* ---- the cast -------------------------------------------------------------------------------------- */

static bool name_taken(const world *w, const char *name) {
    for (int i = 0; i < w->n; i++)
        if (w->p[i].name == name) return true;
    return false;
}

static void cast_people(world *w) {
    int n = 2 + below(&w->r, 2);
    for (w->n = 0; w->n < n;) {
        person *p = &w->p[w->n];
        memset(p, 0, sizeof *p);
        p->female = chance(&w->r, 50);
        p->name = p->female ? girls[below(&w->r, COUNT(girls))] : boys[below(&w->r, COUNT(boys))];
        if (name_taken(w, p->name)) continue;
        p->pet = p->pet_colour = p->pet_name = p->item = p->item_colour = p->place = p->thing = -1;
        w->n++;
    }
}

/* A table index no earlier person uses in the field at offset `field` (pets, items stay unique). */
static int unused_index(world *w, int n, size_t field) {
    for (;;) {
        int k = below(&w->r, n), used = 0;
        for (int i = 0; i < w->n; i++) used |= *(const int *)((const char *)&w->p[i] + field) == k;
        if (!used) return k;
    }
}

/* ---- introductions and facts --------------------------------------------------------------------- */

static void introduce(world *w, int i) {
    person *p = &w->p[i];
    w->last = i;
    const char *kind = p->female ? "girl" : "boy";
    sentence_gap(w->s);
    if (i == 0 && chance(&w->r, 50)) append(w->s, "Once upon a time, there was a %s named %s.", kind, p->name);
    else if (i == 0 || chance(&w->r, 40)) append(w->s, "%s is a %s.", p->name, kind);
    else append(w->s, "%s is %s's %s.", p->name, w->p[0].name, p->female ? "sister" : "brother");
}

static void state_pet(world *w, person *p) {
    rng *r = &w->r;
    p->pet = unused_index(w, COUNT(animals), offsetof(person, pet));
    p->pet_colour = below(r, COUNT(colours));
    const char *animal = animals[p->pet].one, *colour = colours[p->pet_colour], *size = sizes[below(r, COUNT(sizes))];
    sentence_gap(w->s);
    switch (below(r, 3)) {
    case 0: append(w->s, "%s has %s %s %s %s.", p->name, article(size), size, colour, animal); break;
    case 1: append(w->s, "%s has %s %s. The %s is %s.", p->name, article(animal), animal, animal, colour); break;
    default: append(w->s, "%s has %s %s %s. %s's %s is %s.", p->name, article(size), size, animal, p->name, animal, colour);
    }
    if (chance(r, 60)) {
        p->pet_name = below(r, COUNT(pet_names));
        if (chance(r, 50)) append(w->s, " The %s is called %s.", animal, pet_names[p->pet_name]);
        else append(w->s, " Its name is %s.", pet_names[p->pet_name]);
    }
}

static void state_item(world *w, person *p) {
    p->item = unused_index(w, COUNT(items), offsetof(person, item));
    p->item_colour = below(&w->r, COUNT(colours));
    const char *colour = colours[p->item_colour], *also = p->pet >= 0 ? " also" : "";
    sentence_gap(w->s);
    append(w->s, "%s%s has %s %s %s.", chance(&w->r, 50) ? p->name : He(p), also, article(colour), colour, items[p->item].one);
}

/* ---- agreement: activity sentences --------------------------------------------------------------- */

/* Writes the verb of an agreement sentence as a cue: the form the subject needs, the other form wrong. */
static void agreeing_verb(world *w, const verb *v, bool plural) {
    sb_story_cue *c = cue_word(w->s, SB_STORY_CUE_AGREEMENT, plural ? v->many : v->one);
    add_alt(c, plural ? v->one : v->many);
}

static void activity_people(world *w) {
    rng *r = &w->r;
    int a = below(r, w->n), b = (a + 1 + below(r, w->n - 1)) % w->n;
    const verb *v = &person_verbs[below(r, COUNT(person_verbs))];
    bool plural = chance(r, 50);
    sentence_gap(w->s);
    if (plural && chance(r, 70)) append(w->s, "%s and %s", w->p[a].name, w->p[b].name);
    else if (plural) append(w->s, "They");
    else if (chance(r, 70)) append(w->s, "%s", w->p[w->last = a].name);
    else append(w->s, "%s", He(&w->p[w->last]));
    agreeing_verb(w, v, plural);
    append(w->s, " %s.", adverbials[below(r, COUNT(adverbials))]);
}

static void activity_animals(world *w) {
    rng *r = &w->r;
    const verb *v = &animal_verbs[below(r, COUNT(animal_verbs))];
    const noun *animal = &animals[below(r, COUNT(animals))];
    bool plural = chance(r, 50);
    sentence_gap(w->s);
    append(w->s, "The %s", plural ? animal->many : animal->one);
    if (chance(r, 50)) {
        /* A noun of either number between subject and verb: agreement must skip it. */
        const noun *att = &attractors[below(r, COUNT(attractors))];
        append(w->s, " near the %s", chance(r, 50) ? att->many : att->one);
    }
    agreeing_verb(w, v, plural);
    append(w->s, "%s.", chance(r, 50) ? " all day" : "");
}

static void activity_pet(world *w) {
    rng *r = &w->r;
    const person *p = &w->p[below(r, w->n)];
    if (p->pet < 0) {
        activity_animals(w);
        return;
    }
    sentence_gap(w->s);
    append(w->s, "%s's %s", p->name, animals[p->pet].one);
    agreeing_verb(w, &animal_verbs[below(r, COUNT(animal_verbs))], false);
    append(w->s, " %s.", adverbials[below(r, COUNT(adverbials))]);
}

static void mood_sentence(world *w) {
    rng *r = &w->r;
    const person *p = &w->p[w->last];
    bool plural = chance(r, 50), past = chance(r, 30);
    sentence_gap(w->s);
    if (past) append(w->s, "Yesterday, ");
    const char *subject = plural ? "they" : he(p);
    if (!past) subject = plural ? "They" : He(p);
    if (chance(r, 40) && plural) subject = past ? "the children" : "The children";
    else if (chance(r, 40) && !plural) subject = w->p[w->last = below(r, w->n)].name;
    append(w->s, "%s", subject);
    agreeing_verb(w, past ? &be_past : &be_now, plural);
    append(w->s, " %s.", moods[below(r, COUNT(moods))]);
}

static void activity(world *w) {
    switch (below(&w->r, 4)) {
    case 0: activity_people(w); break;
    case 1: activity_animals(w); break;
    case 2: activity_pet(w); break;
    default: mood_sentence(w);
    }
}

/* ---- counting ---------------------------------------------------------------------------------------- */

/* One change to a count: give away, eat or lose (minus) or find / receive (plus). */
static int count_event(world *w, person *p, const person *q, int count) {
    rng *r = &w->r;
    const noun *t = &things[p->thing];
    bool can_lose = count > 1, can_gain = count < 10;
    bool lose = can_lose && (!can_gain || chance(r, 55));
    sentence_gap(w->s);
    if (lose) {
        int k = 1 + below(r, count - 1 < 4 ? count - 1 : 4);
        int how = below(r, 2);
        if (how == 0) append(w->s, "%s gives %s to %s.", He(p), numbers[k], q->name);
        else if (p->thing < N_EDIBLE) append(w->s, "%s eats %s of them.", He(p), numbers[k]);
        else append(w->s, "%s loses %s of them.", He(p), numbers[k]);
        return -k;
    }
    int room = 10 - count, k = 1 + below(r, room < 4 ? room : 4);
    if (chance(r, 50)) append(w->s, "%s finds %s more %s.", He(p), numbers[k], count_noun(t, k));
    else append(w->s, "%s gives %s %s more %s.", q->name, him(p), numbers[k], count_noun(t, k));
    return k;
}

/* Number words near the answer that a wrong computation would give. */
static void count_alts(rng *r, sb_story_cue *c, int start, int last_change, int gold) {
    int cand[] = {start, gold - 2 * last_change, gold + 1, gold - 1, gold + 2, gold - 2, abs(last_change)};
    for (int i = 0; i < COUNT(cand); i++)
        if (cand[i] >= 1 && cand[i] <= 10) add_alt(c, numbers[cand[i]]);
    fill_alts(r, c, numbers + 1, 10);
}

static void counting(world *w) {
    rng *r = &w->r;
    int a = below(r, w->n);
    for (int i = 0; i < w->n && w->p[a].thing >= 0; i++) a = (a + 1) % w->n; /* prefer someone not counted yet */
    int b = (a + 1 + below(r, w->n - 1)) % w->n;
    person *p = &w->p[a];
    w->last = a;
    const person *q = &w->p[b];
    p->thing = below(r, COUNT(things));
    const noun *t = &things[p->thing];
    int start = 2 + below(r, 6), count = start, change = 0;
    sentence_gap(w->s);
    append(w->s, "%s has %s %s.", p->name, numbers[start], t->many);
    int events = chance(r, 70) ? 1 : 2;
    for (int e = 0; e < events; e++) {
        change = count_event(w, p, q, count);
        count += change;
    }
    sentence_gap(w->s);
    append(w->s, "Now %s has", p->name);
    count_alts(r, cue_word(w->s, SB_STORY_CUE_ARITHMETIC, numbers[count]), start, change, count);
    append(w->s, " %s.", count_noun(t, count));
    p->count = count;
}

/* ---- places ------------------------------------------------------------------------------------------- */

static void visit(world *w) {
    rng *r = &w->r;
    int i = below(r, w->n);
    person *p = &w->p[i];
    if (p->place >= 0) return;
    w->last = i;
    p->place = below(r, COUNT(places));
    static const char *const openers[] = {"In the morning, ", "After breakfast, ", "Later, ", ""};
    sentence_gap(w->s);
    append(w->s, "%s%s %s to the %s.", openers[below(r, COUNT(openers))], p->name, chance(r, 50) ? "goes" : "walks",
           places[p->place]);
}

/* ---- the ending: facts restated ------------------------------------------------------------------------- */

/* Wrong values for a recall cue: values the story gave other people first (so copying any
 * value of the right type is not enough), then random ones. */
static void recall_alts(world *w, sb_story_cue *c, const char *const *table, int n, size_t field) {
    for (int i = 0; i < w->n; i++) {
        int k = *(const int *)((const char *)&w->p[i] + field);
        if (k >= 0) add_alt(c, table[k]);
    }
    fill_alts(&w->r, c, table, n);
}

static void restate_pet_colour(world *w, const person *p) {
    sentence_gap(w->s);
    append(w->s, "The colour of %s's %s is", p->name, animals[p->pet].one);
    sb_story_cue *c = cue_word(w->s, SB_STORY_CUE_RECALL, colours[p->pet_colour]);
    recall_alts(w, c, colours, COUNT(colours), offsetof(person, pet_colour));
    recall_alts(w, c, colours, COUNT(colours), offsetof(person, item_colour));
    append(w->s, ".");
}

static void restate_pet_name(world *w, const person *p) {
    sentence_gap(w->s);
    append(w->s, "The name of %s's %s is", p->name, animals[p->pet].one);
    sb_story_cue *c = cue_word(w->s, SB_STORY_CUE_RECALL, pet_names[p->pet_name]);
    recall_alts(w, c, pet_names, COUNT(pet_names), offsetof(person, pet_name));
    append(w->s, ".");
}

static void restate_item(world *w, const person *p) {
    sentence_gap(w->s);
    append(w->s, "%s's %s is", p->name, items[p->item].one);
    sb_story_cue *c = cue_word(w->s, SB_STORY_CUE_RECALL, colours[p->item_colour]);
    recall_alts(w, c, colours, COUNT(colours), offsetof(person, item_colour));
    recall_alts(w, c, colours, COUNT(colours), offsetof(person, pet_colour));
    append(w->s, ".");
}

static void restate_place(world *w, const person *p) {
    sentence_gap(w->s);
    append(w->s, "Where is %s? %s is at the", p->name, He(p));
    sb_story_cue *c = cue_word(w->s, SB_STORY_CUE_RECALL, places[p->place]);
    recall_alts(w, c, places, COUNT(places), offsetof(person, place));
    append(w->s, ".");
}

static void restate_count(world *w, const person *p) {
    sentence_gap(w->s);
    append(w->s, "At the end of the day, %s has", p->name);
    sb_story_cue *c = cue_word(w->s, SB_STORY_CUE_RECALL, numbers[p->count]);
    count_alts(&w->r, c, p->count + 1, 1, p->count);
    append(w->s, " %s.", count_noun(&things[p->thing], p->count));
}

/* Each stated fact is restated with probability 70%, in a shuffled order. */
static void ending(world *w) {
    enum { PET_COLOUR, PET_NAME, ITEM, PLACE, COUNTED, N_FACTS };
    int order[MAX_PEOPLE * N_FACTS], n = 0;
    for (int i = 0; i < w->n; i++)
        for (int f = 0; f < N_FACTS; f++) order[n++] = i * N_FACTS + f;
    shuffle(&w->r, order, n);
    for (int k = 0; k < n; k++) {
        const person *p = &w->p[order[k] / N_FACTS];
        int fact = order[k] % N_FACTS;
        if (!chance(&w->r, 70)) continue;
        if (fact == PET_COLOUR && p->pet >= 0) restate_pet_colour(w, p);
        else if (fact == PET_NAME && p->pet_name >= 0) restate_pet_name(w, p);
        else if (fact == ITEM && p->item >= 0) restate_item(w, p);
        else if (fact == PLACE && p->place >= 0) restate_place(w, p);
        else if (fact == COUNTED && p->thing >= 0) restate_count(w, p);
    }
}

/* ---- a whole story --------------------------------------------------------------------------------------- */

static void middle(world *w) {
    enum { ACTIVITY, COUNTING, VISIT };
    int blocks[10], n = 0;
    int activities = 2 + below(&w->r, 3);
    for (int i = 0; i < activities; i++) blocks[n++] = ACTIVITY;
    blocks[n++] = COUNTING;
    if (chance(&w->r, 30)) blocks[n++] = COUNTING;
    blocks[n++] = VISIT;
    if (chance(&w->r, 50)) blocks[n++] = VISIT;
    shuffle(&w->r, blocks, n);
    for (int i = 0; i < n; i++) {
        if (blocks[i] == ACTIVITY) activity(w);
        else if (blocks[i] == COUNTING) counting(w);
        else visit(w);
    }
}

int sb_story_write(uint64_t story_seed, sb_story *s, sb_err *err) {
    world w = {.r = {story_seed}, .s = s};
    s->len = 0;
    s->n_cues = 0;
    s->oom = 0;
    cast_people(&w);
    for (int i = 0; i < w.n; i++) {
        introduce(&w, i);
        if (chance(&w.r, 75)) state_pet(&w, &w.p[i]);
        if (chance(&w.r, 60)) state_item(&w, &w.p[i]);
    }
    middle(&w);
    ending(&w);
    if (s->oom || !s->text) return sb_err_set(err, SB_EINTERNAL, "out of memory writing a story");
    return SB_OK;
}

void sb_story_free(sb_story *s) {
    free(s->text);
    memset(s, 0, sizeof *s);
}

/* ---- copy games ------------------------------------------------------------------------------------------ */

/* The stories alone do not teach a model this small to look a fact up by its key: in every
 * single-phase run it learned the grammar and the counting, but never looked a colour, name or
 * place up by its owner (datasets/builtin/README.md).  Copy games are text whose second half can only be predicted
 * by finding its key earlier in the context and copying what followed it; trained on these
 * first, the model forms that lookup (an induction head, and one that matches two words), and
 * then uses it on the stories.  All games use the grammar's own words. */

/* Word k of the grammar's open classes (names, animals, items, colours, pet names, places,
 * numbers, things, attractors, moods), 0 <= k < game_words(). */
typedef struct word_class {
    const char *const *words;
    const noun *nouns;
    int n;
} word_class;

static const word_class open_classes[] = {
    {boys, NULL, COUNT(boys)},           {girls, NULL, COUNT(girls)},         {NULL, animals, COUNT(animals)},
    {NULL, items, COUNT(items)},         {colours, NULL, COUNT(colours)},     {pet_names, NULL, COUNT(pet_names)},
    {places, NULL, COUNT(places)},       {numbers, NULL, COUNT(numbers)},     {NULL, things, COUNT(things)},
    {NULL, attractors, COUNT(attractors)}, {moods, NULL, COUNT(moods)},
};

static int game_words(void) {
    int n = 0;
    for (int c = 0; c < COUNT(open_classes); c++) n += open_classes[c].n;
    return n;
}

static const char *game_word(int k) {
    for (int c = 0; c < COUNT(open_classes); c++) {
        const word_class *wc = &open_classes[c];
        if (k < wc->n) return wc->words ? wc->words[k] : wc->nouns[k].one;
        k -= wc->n;
    }
    return "";
}

/* n distinct indices in [0, range), n <= range. */
static void distinct(rng *r, int *out, int n, int range) {
    for (int i = 0; i < n;) {
        int k = below(r, range), seen = 0;
        for (int j = 0; j < i; j++) seen |= out[j] == k;
        if (!seen) out[i++] = k;
    }
}

static const char *any_name(rng *r) {
    int k = below(r, COUNT(boys) + COUNT(girls));
    return k < COUNT(boys) ? boys[k] : girls[k - COUNT(boys)];
}

/* Two different names: the teller and the one who repeats. */
static void two_names(rng *r, const char **a, const char **b) {
    *a = any_name(r);
    do *b = any_name(r);
    while (*b == *a);
}

/* "Tom says: w1 .. wn. Mia says the end: wk .. wn."  The second half starts at a random word,
 * so no position predicts it: only finding wk earlier and copying on does.  With repeats the
 * list comes from a pool of 4-7 words, so one word is ambiguous and the model must match the
 * last two or more. */
static void echo_game(rng *r, sb_story *s, bool repeats) {
    enum { MAX_SAID = 16 };
    int said[MAX_SAID], n, k;
    if (repeats) {
        int pool[7], n_pool = 4 + below(r, 4);
        distinct(r, pool, n_pool, game_words());
        n = 10 + below(r, 7);
        for (int i = 0; i < n; i++) said[i] = pool[below(r, n_pool)];
        k = 2 + below(r, n - 4);
    } else {
        n = 8 + below(r, 7);
        distinct(r, said, n, game_words());
        k = 1 + below(r, n - 3);
    }
    const char *a, *b;
    two_names(r, &a, &b);
    append(s, "%s says:", a);
    for (int i = 0; i < n; i++) append(s, " %s", game_word(said[i]));
    append(s, ". %s says the end:", b);
    for (int i = k; i < n; i++) append(s, " %s", game_word(said[i]));
    append(s, ".");
}

/* Noun k of animals then items (a game's keys). */
static const char *key_noun(int k) { return k < COUNT(animals) ? animals[k].one : items[k - COUNT(animals)].one; }

/* "Tom tells a story: Nora's horse is red. Ben's kite is blue. ... Mia tells it again:" and 2 or
 * more of the facts in another order.  The colour after "X's N is" is the one told first: a
 * key of two words before the value, as in the stories' "Nora's horse is red". */
static void told_again_game(rng *r, sb_story *s) {
    enum { MAX_FACTS = 7 };
    int noun[MAX_FACTS], order[MAX_FACTS], n = 3 + below(r, 5);
    const char *owner[MAX_FACTS], *colour[MAX_FACTS];
    distinct(r, noun, n, COUNT(animals) + COUNT(items));
    for (int i = 0; i < n; i++) {
        owner[i] = any_name(r);
        colour[i] = colours[below(r, COUNT(colours))];
        order[i] = i;
    }
    const char *a, *b;
    two_names(r, &a, &b);
    append(s, "%s tells a story:", a);
    for (int i = 0; i < n; i++) append(s, " %s's %s is %s.", owner[i], key_noun(noun[i]), colour[i]);
    append(s, " %s tells it again:", b);
    shuffle(r, order, n);
    int told = 2 + below(r, n - 1);
    for (int j = 0; j < told; j++) {
        int i = order[j];
        append(s, " %s's %s is %s.", owner[i], key_noun(noun[i]), colour[i]);
    }
}

/* "Tom says: cup red, horse Bella, ... Mia says: horse Bella, cup red, ...": every pair again in
 * another order; the value follows a key that occurs once before. */
static void pairs_game(rng *r, sb_story *s) {
    enum { MAX_PAIRS = 7 };
    int key[MAX_PAIRS], order[MAX_PAIRS], n = 3 + below(r, 5);
    const char *value[MAX_PAIRS];
    distinct(r, key, n, COUNT(animals) + COUNT(items));
    for (int i = 0; i < n; i++) {
        int v = below(r, COUNT(colours) + COUNT(pet_names));
        value[i] = v < COUNT(colours) ? colours[v] : pet_names[v - COUNT(colours)];
        order[i] = i;
    }
    const char *a, *b;
    two_names(r, &a, &b);
    append(s, "%s says:", a);
    for (int i = 0; i < n; i++) append(s, "%s %s %s", i ? "," : "", key_noun(key[i]), value[i]);
    append(s, ". %s says:", b);
    shuffle(r, order, n);
    for (int j = 0; j < n; j++) append(s, "%s %s %s", j ? "," : "", key_noun(key[order[j]]), value[order[j]]);
    append(s, ".");
}

/* One paragraph: 3-5 games, each one of the four at random. */
static void games_paragraph(rng *r, sb_story *s) {
    int n = 3 + below(r, 3);
    for (int i = 0; i < n; i++) {
        sentence_gap(s);
        switch (below(r, 4)) {
        case 0: echo_game(r, s, false); break;
        case 1: echo_game(r, s, true); break;
        case 2: told_again_game(r, s); break;
        default: pairs_game(r, s);
        }
    }
}

int sb_story_games_write(uint64_t games_seed, sb_story *s, sb_err *err) {
    rng r = {games_seed};
    s->len = 0;
    s->n_cues = 0;
    s->oom = 0;
    games_paragraph(&r, s);
    if (s->oom || !s->text) return sb_err_set(err, SB_EINTERNAL, "out of memory writing copy games");
    return SB_OK;
}

/* ---- a corpus split ------------------------------------------------------------------------------------------ */

/* Entries 0..n-1 of a split, separated by blank lines: entry i is story i (when with_stories)
 * followed, with probability games_percent, by games paragraph i.  The games draw from their
 * own stream, so the stories are the same bytes with or without them, and paragraph i is the
 * same in the games alone and after story i. */
static int generate_split(uint64_t seed, int n, int split, bool with_stories, int games_percent, char **text,
                          size_t *len, sb_err *err) {
    *text = NULL;
    *len = 0;
    if (n < 0 || split < SB_STORY_TRAIN || split > SB_STORY_TEST || games_percent < 0 || games_percent > 100)
        return sb_err_set(err, SB_EINPUT, "story corpus: bad arguments (entries %d, split %d, games %d %%)", n, split,
                          games_percent);
    sb_story out = {0}, one = {0};
    append(&out, "%s", "");
    int rc = SB_OK;
    for (int i = 0; i < n && rc == SB_OK; i++) {
        if (sb_story_split_of(i) != split) continue;
        if (with_stories) {
            rc = sb_story_write(sb_story_seed(seed, SB_STORY_STREAM_CORPUS, (uint64_t)i), &one, err);
            if (rc == SB_OK) append(&out, "%s%s", out.len ? "\n\n" : "", one.text);
        }
        rng pick = {sb_story_seed(seed, SB_STORY_STREAM_GAMES, (uint64_t)i)};
        if (rc == SB_OK && chance(&pick, games_percent)) {
            rc = sb_story_games_write(splitmix64(&pick.state), &one, err);
            if (rc == SB_OK) append(&out, "%s%s", out.len ? "\n\n" : "", one.text);
        }
    }
    if (rc == SB_OK && out.len) append(&out, "\n");
    if (rc == SB_OK && out.oom) rc = sb_err_set(err, SB_EINTERNAL, "out of memory writing the story corpus");
    sb_story_free(&one);
    if (rc != SB_OK) {
        sb_story_free(&out);
        return rc;
    }
    *text = out.text;
    *len = out.len;
    return SB_OK;
}

int sb_story_generate(uint64_t seed, int n_stories, int split, char **text, size_t *len, sb_err *err) {
    return generate_split(seed, n_stories, split, true, 0, text, len, err);
}

int sb_story_generate_with_games(uint64_t seed, int n_stories, int games_percent, int split, char **text, size_t *len,
                                 sb_err *err) {
    return generate_split(seed, n_stories, split, true, games_percent, text, len, err);
}

int sb_story_games_generate(uint64_t seed, int n_paragraphs, int split, char **text, size_t *len, sb_err *err) {
    return generate_split(seed, n_paragraphs, split, false, 100, text, len, err);
}
