#!/usr/bin/env python3
"""copy_games_prototype.py - the Python prototype of the built-in copy games.

Not a fixture and not part of `make test`: the generator behind the prototype rows of the
"Copy games" table in datasets/builtin/README.md, kept so those rows can be rerun.  The product
is the C generator in datasets/story_corpus.c (`slimbench data games`), the same four games with
other draws.

  python3 copy_games_prototype.py games SEED N OUT
      OUT/train.txt (N paragraphs) and OUT/valid.txt (max(200, N/20)) of games
  python3 copy_games_prototype.py mix STORIES GAMES OUT
      OUT/{train,valid}.txt: each story of STORIES/{split}.txt followed, with probability 0.3
      (random.Random(5)), by the next paragraph of GAMES/{split}.txt

The README's rows used `games 1 12000 G1` (phase 1), `games 7 4000 G7` and
`mix S G7 M` with S from `slimbench data corpus --out S` (phase 2).
"""
import os
import random
import sys

BOYS = "Tom Sam Ben Leo Jack Dan Paul Tim Ned Finn Hugo Owen".split()
GIRLS = "Mia Anna Lily Emma Sara Kate Lucy Rosa Nora Eva Ruby Zoe".split()
NAMES = BOYS + GIRLS
ANIMALS = "dog cat bird rabbit horse duck frog goat".split()
ITEMS = "kite ball hat cup book box bike scarf".split()
COLOURS = "red blue green yellow brown black white pink orange grey".split()
PET_NAMES = "Rex Bella Coco Spot Luna Pip Daisy Milo Ziggy Bobo Fluffy Sunny".split()
PLACES = "park garden river forest market beach school farm lake hill".split()
NUMBERS = "zero one two three four five six seven eight nine ten".split()
OTHER = ("apple pear cookie egg cherry shell coin stone marble flower tree house boat rock fence bench "
         "happy tired hungry sad sleepy busy excited").split()
WORDS = NAMES + ANIMALS + ITEMS + COLOURS + PET_NAMES + PLACES + NUMBERS + OTHER


def restart_echo(r):
    n = r.randint(8, 14)
    w = r.sample(WORDS, n)
    k = r.randint(1, n - 3)
    a, b = r.sample(NAMES, 2)
    return f"{a} says: {' '.join(w)}. {b} says the end: {' '.join(w[k:])}."


def pool_echo(r):
    pool = r.sample(WORDS, r.randint(4, 7))
    n = r.randint(10, 16)
    w = [r.choice(pool) for _ in range(n)]
    k = r.randint(2, n - 3)
    a, b = r.sample(NAMES, 2)
    return f"{a} says: {' '.join(w)}. {b} says the end: {' '.join(w[k:])}."


def told_again(r):
    nf = r.randint(3, 7)
    nouns = r.sample(ANIMALS + ITEMS, nf)
    who = [r.choice(NAMES) for _ in nouns]
    col = [r.choice(COLOURS) for _ in nouns]
    facts = list(zip(who, nouns, col))
    a, b = r.sample(NAMES, 2)
    s = f"{a} tells a story:" + "".join(f" {x}'s {y} is {c}." for x, y, c in facts) + f" {b} tells it again:"
    r.shuffle(facts)
    m = r.randint(2, nf)
    return s + "".join(f" {x}'s {y} is {c}." for x, y, c in facts[:m])


def pairs(r):
    nf = r.randint(3, 7)
    keys = r.sample(ITEMS + ANIMALS, nf)
    vals = [r.choice(COLOURS + PET_NAMES) for _ in keys]
    a, b = r.sample(NAMES, 2)
    p = list(zip(keys, vals))
    s = f"{a} says: " + ", ".join(f"{k} {v}" for k, v in p) + f". {b} says: "
    r.shuffle(p)
    return s + ", ".join(f"{k} {v}" for k, v in p) + "."


GAMES = [restart_echo, pool_echo, told_again, pairs]


def games(seed, n, out):
    r = random.Random(seed)
    os.makedirs(out, exist_ok=True)
    for split, count in (("train", n), ("valid", max(200, n // 20))):
        with open(f"{out}/{split}.txt", "w") as f:
            for _ in range(count):
                f.write(" ".join(r.choice(GAMES)(r) for _ in range(r.randint(3, 5))) + "\n\n")


def mix(stories, games_dir, out):
    r = random.Random(5)
    os.makedirs(out, exist_ok=True)
    for split in ("train", "valid"):
        s = [p for p in open(f"{stories}/{split}.txt").read().split("\n\n") if p.strip()]
        g = [p for p in open(f"{games_dir}/{split}.txt").read().split("\n\n") if p.strip()]
        mixed, used = [], 0
        for p in s:
            mixed.append(p)
            if r.random() < 0.3 and used < len(g):
                mixed.append(g[used])
                used += 1
        open(f"{out}/{split}.txt", "w").write("\n\n".join(mixed) + "\n\n")


def main():
    if len(sys.argv) == 5 and sys.argv[1] == "games":
        games(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])
    elif len(sys.argv) == 5 and sys.argv[1] == "mix":
        mix(sys.argv[2], sys.argv[3], sys.argv[4])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
