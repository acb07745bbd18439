#!/usr/bin/env python3
"""copy_probes.py - does a built-in-style model copy by content or by position?

Not a fixture and not part of `make test`: the probes behind the "echo and pairs games"
paragraph of datasets/builtin/README.md, kept so they can be rerun on any model folder
(loaded with transformers, f32).

  python3 tests/reference/recall/copy_probes.py MODEL_DIR

Six probes, each on texts in the story grammar's words, with a fixed seed:
  echo in order   "Tom says: w1 .. w10. Mia says it back: w1 .. w10."; mean negative
                  log-likelihood of the ten words of each pass.  Low on the second pass
                  means the model copies the list.
  echo from w5    the same, but the second pass starts at w5: nll of w6 .. w10.  A copier
                  that matches content (an induction head: find the earlier w5, copy what
                  followed it) stays low; one that counts positions from "says it back:"
                  does not.
  pairs lookup    "Tom says: cup red, kite blue, ... Mia says:" then the same pairs in
                  another order; after each key, is the argmax over the ten colours the
                  colour paired with it earlier?  Chance 0.1.
  exact repeat    "X's duck is red." then filler then "X's duck is": argmax over ten
                  colours.  Chance 0.1.  The key ("duck is") is two tokens before the value.
  told again      "Tom tells a story: Nora's horse is red. Leo's cup is blue. ... Mia tells it
                  again:" then the same sentences in another order: after each "X's N is",
                  is the argmax over the ten colours the one told first?  The key is two
                  words (owner and noun), as in the recall questions.  Chance 0.1.
  one-token key   "Lily calls her horse Bella. Ben calls his cat Rex." filler "Lily loves
                  her horse": Bella or Rex?  The value follows a key that occurs once, so a
                  plain induction head (find the earlier "horse", copy what followed)
                  answers it.  Chance 0.5.
"""
import random
import sys

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

WORDS = "dog cat bird rabbit kite ball hat cup red blue green yellow brown black white park garden river " \
        "forest market apple pear egg".split()
ITEMS = "kite ball hat cup book box bike scarf".split()
COLOURS = "red blue green yellow brown black white pink orange grey".split()
ANIMALS = "dog cat bird rabbit duck frog goat horse".split()
NAMES = "Tom Sam Ben Leo Mia Anna Lily Emma".split()
PET_NAMES = "Rex Bella Coco Spot Luna Pip Daisy Milo".split()
INTRO = "Tom is a boy. Mia is a girl."


class Model:
    def __init__(self, folder):
        self.tok = AutoTokenizer.from_pretrained(folder)
        self.lm = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
        self.colour_ids = [self.word_id(" " + c) for c in COLOURS]

    def ids(self, text):
        return self.tok(text)["input_ids"]

    def word_id(self, text):
        """The one token of a word (the tokenizer puts a BOS token first)."""
        ids = self.tok(text, add_special_tokens=False)["input_ids"]
        assert len(ids) == 1, f"{text!r} is not one token"
        return ids[0]

    def token_nll(self, text):
        """nll[i] = -log p(token i+1 | tokens 0..i)."""
        ids = torch.tensor([self.ids(text)])
        with torch.no_grad():
            logp = torch.log_softmax(self.lm(ids).logits[0], -1)
        return -logp[:-1].gather(1, ids[0, 1:, None])[:, 0]

    def next_logits(self, text):
        """Logits for the token after `text`."""
        with torch.no_grad():
            return self.lm(torch.tensor([self.ids(text)])).logits[0, -1]

    def best_colour(self, text):
        return COLOURS[int(torch.argmax(self.next_logits(text)[self.colour_ids]))]


def mean_nll(model, prefix, span):
    """Mean nll of the tokens of `span` when it follows `prefix`."""
    start = len(model.ids(prefix))
    nll = model.token_nll(prefix + span)
    return nll[start - 1:].mean().item()


def echo(model, rng, trials=30):
    first = second = from_middle = 0.0
    for _ in range(trials):
        words = [rng.choice(WORDS) for _ in range(10)]
        said = " " + " ".join(words)
        head = f"{INTRO} Tom says:"
        first += mean_nll(model, head, said)
        second += mean_nll(model, head + said + ". Mia says it back:", said)
        from_middle += mean_nll(model, head + said + ". Mia says it back: " + words[4], " " + " ".join(words[5:]))
    return first / trials, second / trials, from_middle / trials


def pairs_lookup(model, rng, games=40, n_pairs=6):
    right = asked = 0
    for _ in range(games):
        keys = rng.sample(ITEMS, n_pairs)
        vals = [rng.choice(COLOURS) for _ in keys]
        text = f"{INTRO} Tom says: " + ", ".join(f"{k} {v}" for k, v in zip(keys, vals)) + ". Mia says:"
        order = list(range(n_pairs))
        rng.shuffle(order)
        for j, i in enumerate(order):
            text += ("," if j else "") + " " + keys[i]
            right += model.best_colour(text) == vals[i]
            asked += 1
            text += " " + vals[i]
    return right / asked


def exact_repeat(model, rng, trials=60):
    filler = " Tom walks to the park. The cats sleep. Mia has four eggs. She finds one more egg. Now Mia has five eggs."
    right = 0
    for _ in range(trials):
        colour, who, animal = rng.choice(COLOURS), rng.choice(NAMES), rng.choice(ANIMALS)
        text = f"{who} is here. {who}'s {animal} is {colour}.{filler} {who}'s {animal} is"
        right += model.best_colour(text) == colour
    return right / trials


def told_again(model, rng, games=40):
    everyone = NAMES + "Nora Leo Ruby Hugo Kate Finn".split()
    right = asked = 0
    for _ in range(games):
        facts, n_facts = [], rng.randint(4, 6)
        while len(facts) < n_facts:
            key = (rng.choice(everyone), rng.choice(ANIMALS + ITEMS))
            if key not in [k for k, _ in facts]:
                facts.append((key, rng.choice(COLOURS)))
        text = "Tom tells a story:" + "".join(f" {w}'s {n} is {c}." for (w, n), c in facts) + " Mia tells it again:"
        rng.shuffle(facts)
        for (who, noun), colour in facts:
            text += f" {who}'s {noun} is"
            right += model.best_colour(text) == colour
            asked += 1
            text += f" {colour}."
    return right / asked


def one_token_key(model, rng, trials=100):
    filler = " Tom walks to the park. The cats sleep. Mia has four eggs. Now Mia has five eggs."
    right = 0
    for _ in range(trials):
        (pet, other_pet), (name, other_name) = rng.sample(ANIMALS, 2), rng.sample(PET_NAMES, 2)
        text = f"Lily calls her {pet} {name}. Ben calls his {other_pet} {other_name}.{filler} Lily loves her {pet}"
        logits = model.next_logits(text)
        right += bool(logits[model.word_id(" " + name)] > logits[model.word_id(" " + other_name)])
    return right / trials


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: copy_probes.py MODEL_DIR")
    model = Model(sys.argv[1])
    first, second, middle = echo(model, random.Random(0))
    print(f"echo in order: nll first pass {first:.3f}, second pass {second:.3f}")
    print(f"echo from w5:  nll of w6..w10 {middle:.3f}")
    print(f"pairs lookup:  acc {pairs_lookup(model, random.Random(1)):.3f} (chance 0.1)")
    print(f"exact repeat:  acc {exact_repeat(model, random.Random(2)):.3f} (chance 0.1)")
    print(f"told again:    acc {told_again(model, random.Random(4)):.3f} (chance 0.1)")
    print(f"one-token key: acc {one_token_key(model, random.Random(3)):.2f} (chance 0.5)")


if __name__ == "__main__":
    main()
