#!/usr/bin/env python3
"""recall_by_type.py - the built-in recall set scored per question type, against two baselines.

Not a fixture and not part of `make test`: the measure behind the recall tables of
datasets/builtin/README.md, kept so they can be rerun for any model folder.

  python3 tests/reference/recall/recall_by_type.py MODEL_DIR OUT [N]

writes the recall set (`slimbench data mc --n N`, seed 1, N = 500 by default) to OUT/mc/,
splits it by question type (pet colour, pet name, item colour, place, count), scores each
part with `slimbench eval --task mc --format jsonl` and prints, per type:
  - acc: the model's accuracy (and its standard error);
  - chance: 1 / number of choices;
  - copy: the accuracy of a reader who picks at random among the choices that occur in
    the story before the question (the gold one when it is the only one): what copying
    any value of the right type from the context gives, without knowing whose it is.
A model at "copy" has learned to copy from its context, not to look a fact up by its key;
only accuracy above "copy" shows key-based recall.  Two more rows split the pet-colour
questions: "in_order" where the story already states the fact in the question's own order
("Emma's frog is orange" or "The frog is orange" before "The colour of Emma's frog is"),
"other" where it does not (the colour only before its noun: "Emma has an orange frog").  Run from the repository root after
`make`; it calls ./slimbench.
"""
import json
import os
import re
import subprocess
import sys


def question_type(context):
    tail = context[context.rfind(". ") + 2:] if ". " in context else context
    if tail.startswith("The colour of"):
        return "pet_colour"
    if tail.startswith("The name of"):
        return "pet_name"
    if tail.startswith("At the end of the day"):
        return "count"
    if context.endswith(" is at the"):
        return "place"
    return "item_colour"


def copy_accuracy(row):
    """Expected accuracy of picking uniformly among the choices found in the story."""
    context = row["context"]
    body = context[:context.rfind(". ") + 1]
    seen = [c for c in row["choices"] if re.search(r"\b" + re.escape(c) + r"\b", body)]
    gold = row["choices"][row["gold"]]
    if gold not in seen:
        return 1.0 / len(row["choices"])
    return 1.0 / len(seen)


def stated_in_order(row):
    """The pet-colour fact appears earlier with the colour after its key, as the question asks it."""
    context = row["context"]
    m = re.search(r"The colour of (\w+)'s (\w+) is$", context)
    if not m:
        return False
    owner, pet = m.groups()
    gold, story = row["choices"][row["gold"]], context[:m.start()]
    return f"{owner}'s {pet} is {gold}" in story or f"The {pet} is {gold}" in story


def score(model, mc, out, name, lines):
    """Prints one row: accuracy of the questions `lines`, chance and the copy baseline."""
    part = os.path.join(mc, f"recall_{name}.jsonl")
    open(part, "w").writelines(lines)
    runs = os.path.join(out, f"eval_{name}")
    subprocess.run(["./slimbench", "eval", "--model", model, "--task", "mc", "--data", part, "--format", "jsonl",
                    "--out", runs], check=True, capture_output=True)
    with open(os.path.join(runs, "runs.jsonl")) as f:
        acc = json.loads(f.readlines()[-1])["metrics"]["acc"]
    rows = [json.loads(s) for s in lines]
    chance = sum(1.0 / len(r["choices"]) for r in rows) / len(rows)
    copy = sum(copy_accuracy(r) for r in rows) / len(rows)
    print(f"{name:20} {len(rows):4d} {acc['value']:7.3f} +-{acc['stderr']:.3f} {chance:7.3f} {copy:6.3f}")


def main():
    if len(sys.argv) not in (3, 4):
        sys.exit(__doc__)
    model, out = sys.argv[1], sys.argv[2]
    n = sys.argv[3] if len(sys.argv) == 4 else "500"
    mc = os.path.join(out, "mc")
    subprocess.run(["./slimbench", "data", "mc", "--out", mc, "--n", n], check=True, capture_output=True)
    by_type = {}
    for line in open(os.path.join(mc, "recall.jsonl")):
        by_type.setdefault(question_type(json.loads(line)["context"]), []).append(line)
    print(f"{'type':20} {'n':>4} {'acc':>14} {'chance':>7} {'copy':>6}")
    for name in ["pet_colour", "pet_name", "item_colour", "place", "count"]:
        if by_type.get(name):
            score(model, mc, out, name, by_type[name])
    pet_colour = by_type.get("pet_colour", [])
    in_order = [s for s in pet_colour if stated_in_order(json.loads(s))]
    other = [s for s in pet_colour if not stated_in_order(json.loads(s))]
    for name, lines in (("pet_colour_in_order", in_order), ("pet_colour_other", other)):
        if lines:
            score(model, mc, out, name, lines)


if __name__ == "__main__":
    main()
