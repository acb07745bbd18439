#!/usr/bin/env python3
"""Reference fixtures for the zero-shot multiple-choice task (tasks/multiple_choice.c).

Run from the repository root (CPU only, offline, ~20 s):

    pip install torch==2.15.0 transformers==5.24.0 tokenizers==0.23.3 lm-eval==0.4.13
    python3 tests/reference/make_mc_fixtures.py

Writes tests/reference/mc/:
  model/          a tiny Llama (hidden 64, 2 layers, 128 positions, tied head)
                  with a byte-level BPE tokenizer trained here (vocab 500, BOS
                  added by the post-processor like Llama's);
  data/*.jsonl    5-8 hand-written documents per format, in the layout of the
                  Hugging Face release of each dataset;
  expected/*.json what lm-eval itself produces: the task's own YAML config
                  (with its utils functions: HellaSwag's preprocess, WinoGrande's
                  partial evaluation, COPA's connectors) is loaded from the
                  installed lm-eval package, pointed at the local JSONL file
                  and asked to build its requests; lm-eval's HFLM scores them
                  with the model in float32; the task's process_results turns
                  them into acc / acc_norm.  Older lm-eval releases are
                  reproduced with HFLM's add_bos_token=False (0.4.3-0.4.9.1)
                  and prefix_token_id=EOS as well (0.4.0-0.4.2).

Each request's loglikelihood is also recomputed here by a plain
transformers forward pass over (context + continuation tokens)[-(L+1):][:-1]
and must agree with lm-eval's to 1e-5, so the fixture does not depend on
HFLM's batching.
"""

import json
import math
import os
import shutil
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "mc")
CACHE = tempfile.mkdtemp(prefix="sb_mc_hf_")
os.environ["HF_DATASETS_CACHE"] = CACHE
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"

import numpy as np  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers  # noqa: E402
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast  # noqa: E402

import lm_eval  # noqa: E402
from lm_eval.api.task import ConfigurableTask  # noqa: E402
from lm_eval.models.huggingface import HFLM  # noqa: E402
from lm_eval.tasks._yaml_loader import load_yaml  # noqa: E402

torch.set_num_threads(1)
torch.use_deterministic_algorithms(True)
transformers.logging.set_verbosity_error()

MAX_POSITIONS = 128

# --------------------------------------------------------------------------
# hand-written documents, in each dataset's Hugging Face JSONL layout
# --------------------------------------------------------------------------

PIQA = [
    {"goal": "How do I open a stuck jar lid?", "sol1": "Run the lid under hot water, then twist it.",
     "sol2": "Put the jar in the freezer overnight, then twist it.", "label": 0},
    {"goal": "Keep bread fresh for longer", "sol1": "Store it in a sealed bag.", "sol2": "Leave it in the sun.",
     "label": 0},
    {"goal": "To make a café au lait,", "sol1": "mix hot coffee with steamed milk.",
     "sol2": "mix cold water with sand.", "label": 0},
    {"goal": "How can I dry wet shoes quickly?", "sol1": "Fill them with newspaper.",
     "sol2": "Fill them with water.", "label": 0},
    {"goal": "Clean a cast iron pan", "sol1": "Soak it in soapy water for a week.",
     "sol2": "Scrub it with coarse salt and a little oil.", "label": 1},
    {"goal": "how do you cut a mango?", "sol1": "slice along both sides of the flat seed.",
     "sol2": "slice straight through the seed.", "label": 0},
]

ARC = [
    {"id": "Q1", "question": "Which form of energy does a stretched rubber band store?",
     "choices": {"text": ["elastic potential energy", "sound energy", "light energy", "nuclear energy"],
                 "label": ["A", "B", "C", "D"]}, "answerKey": "A"},
    {"id": "Q2", "question": "What do plants need to make food?",
     "choices": {"text": ["sunlight", "darkness", "salt"], "label": ["A", "B", "C"]}, "answerKey": "A"},
    {"id": "Q3", "question": "Which unit measures temperature?",
     "choices": {"text": ["meter", "degree Celsius", "gram", "liter"], "label": ["1", "2", "3", "4"]},
     "answerKey": "2"},
    {"id": "Q4", "question": "A student mixes sugar into water. What happens to the sugar?",
     "choices": {"text": ["It dissolves.", "It burns.", "It freezes.", "It melts into a gas.", "It glows."],
                 "label": ["A", "B", "C", "D", "E"]}, "answerKey": "A"},
    {"id": "Q5", "question": "Which planet is closest to the Sun?",
     "choices": {"text": ["Venus", "Mercury", "Earth", "Mars"], "label": ["A", "B", "C", "D"]},
     "answerKey": "B"},
    {"id": "Q6", "question": "Why does ice float on water?",
     "choices": {"text": ["Ice is less dense than liquid water.", "Ice is heavier.", "Water is magnetic.",
                          "Ice is hot."], "label": ["A", "B", "C", "D"]}, "answerKey": "A"},
]

HELLASWAG = [
    {"ind": 1, "activity_label": "Removing ice from car",
     "ctx_a": "Then, the man writes over the snow covering the window of a car, and a woman wearing winter clothes smiles.",
     "ctx_b": "then", "ctx": "", "endings": [
         ", the man adds wax to the windshield and cuts it.",
         ", a person board a ski lift, while two men supporting the head of the person wearing winter clothes snow as the we girls sled.",
         ", the man puts on a christmas coat, knitted with netting.",
         ", the man continues removing the snow on his car."],
     "source_id": "activitynet~v_-1IBHYS3L-Y", "split": "val", "split_type": "indomain", "label": "3"},
    {"ind": 2, "activity_label": "Home and Garden",
     "ctx_a": "[header] How to water a cactus [title] Check the soil first.",
     "ctx_b": "[step] Push Your Finger INTO the soil.", "ctx": "", "endings": [
         "If it is dry  two inches down, [substeps] water it slowly.",
         "Paint the pot  [title] bright red.",
         "[title] Water it every hour  of the day.",
         "Sing to the cactus loudly."],
     "source_id": "wikihow~1", "split": "val", "split_type": "zeroshot", "label": "0"},
    {"ind": 3, "activity_label": "Making a sandwich",
     "ctx_a": "A woman lays two slices of bread on a board.", "ctx_b": "She", "ctx": "", "endings": [
         "spreads butter on one slice and adds cheese.", "throws the bread into the river.",
         "paints the bread blue.", "puts the board in the oven whole."],
     "source_id": "activitynet~2", "split": "val", "split_type": "indomain", "label": "0"},
    {"ind": 4, "activity_label": "Sports and Fitness",
     "ctx_a": "[header] How to stretch before a run   [title] Warm up.", "ctx_b": "", "ctx": "", "endings": [
         " Walk briskly for five minutes [step] so your muscles warm up. ",
         "Eat a large meal.", "[title] Sit still [step] for an hour.", "Run as fast as possible immediately."],
     "source_id": "wikihow~3", "split": "val", "split_type": "zeroshot", "label": "0"},
    {"ind": 5, "activity_label": "Playing guitar",
     "ctx_a": "A boy holds a guitar on his lap.", "ctx_b": "HE STRUMS the strings", "ctx": "", "endings": [
         "and sings a song.", "and eats the guitar.", "and the guitar flies away.", "and falls asleep."],
     "source_id": "activitynet~4", "split": "val", "split_type": "indomain", "label": "0"},
    {"ind": 6, "activity_label": "Cooking",
     "ctx_a": "A chef chops onions on a counter.", "ctx_b": "éric then", "ctx": "", "endings": [
         "adds them to a hot pan.", "puts them in his pocket.", "hands them to a dog.", "[unfinished bracket"],
     "source_id": "activitynet~5", "split": "val", "split_type": "indomain", "label": "0"},
]

WINOGRANDE = [
    {"sentence": "Sarah was a much better surgeon than Maria so _ always got the harder cases.",
     "option1": "Sarah", "option2": "Maria", "answer": "1"},
    {"sentence": "Sarah was a much better surgeon than Maria so _ always got the easier cases.",
     "option1": "Sarah", "option2": "Maria", "answer": "2"},
    {"sentence": "The trophy doesn't fit into the brown suitcase because the _ is too large.",
     "option1": "trophy", "option2": "suitcase", "answer": "1"},
    {"sentence": "The trophy doesn't fit into the brown suitcase because the _ is too small.",
     "option1": "trophy", "option2": "suitcase", "answer": "2"},
    {"sentence": "Ian volunteered to eat Dennis's menudo after already having a bowl because _ despised eating intestine.",
     "option1": "Ian", "option2": "Dennis", "answer": "2"},
    {"sentence": "He moved the lamp from the desk to the shelf, since the _ was cluttered.",
     "option1": "desk", "option2": "shelf", "answer": "1"},
]

LONG_PASSAGE = (
    "The river that runs through the old town was once used to carry timber down from the hills. "
    "Every spring the loggers would tie the trunks together into long rafts and ride them to the mill, "
    "where the wood was cut into planks for houses, boats and barrels. When the railway arrived the rafts "
    "disappeared, the mill closed, and the river became a quiet place for fishing and swimming. Today a small "
    "museum near the bridge keeps the tools of the loggers, and every summer the town holds a festival where "
    "children build tiny rafts from sticks and race them under the arches of the bridge.")

BOOLQ = [
    {"question": "is the sun a star", "passage": "The Sun is the star at the center of the Solar System.",
     "idx": 0, "label": 1},
    {"question": "can penguins fly", "passage": "Penguins are flightless birds that live almost exclusively in the Southern Hemisphere.",
     "idx": 1, "label": 0},
    {"question": "did the town keep the old mill open after the railway arrived", "passage": LONG_PASSAGE,
     "idx": 2, "label": 0},
    {"question": "is water wet", "passage": "Water is a liquid at room temperature and makes things wet.",
     "idx": 3, "label": 1},
    {"question": "is a tomato a vegetable in botany", "passage": "Botanically, a tomato is a fruit: it develops from the flower and contains seeds.",
     "idx": 4, "label": 0},
    {"question": "do rafts still carry timber on the river", "passage": LONG_PASSAGE + " The festival is popular.",
     "idx": 5, "label": 0},
]

COPA = [
    {"premise": "My body cast a shadow over the grass.", "choice1": "The sun was rising.",
     "choice2": "The grass was cut.", "question": "cause", "idx": 0, "label": 0},
    {"premise": "The woman tolerated her friend's difficult behavior.", "choice1": "The woman knew her friend was going through a hard time.",
     "choice2": "The woman felt that her friend took advantage of her kindness.", "question": "cause", "idx": 1, "label": 0},
    {"premise": "The women met for coffee.  ", "choice1": "The cafe reopened in a new location.",
     "choice2": "They wanted to catch up with each other.", "question": "cause", "idx": 2, "label": 1},
    {"premise": "The runner wore shorts.", "choice1": "The forecast predicted high temperatures.",
     "choice2": "She planned to run along the beach.", "question": "cause", "idx": 3, "label": 0},
    {"premise": "I tipped the bottle.", "choice1": "The liquid in the bottle froze.",
     "choice2": "The liquid in the bottle poured out.", "question": "effect", "idx": 4, "label": 1},
    {"premise": "The boy was hungry.", "choice1": "I made him a sandwich.",
     "choice2": "He went to sleep.", "question": "effect", "idx": 5, "label": 0},
]

LAMBADA = [
    {"text": "She opened the door and saw her brother standing in the rain. \"Come in,\" she said, and handed him a towel"},
    {"text": "The dog ran across the field to fetch the ball. When it came back, it dropped the ball at my feet"},
    {"text": "He counted the coins twice, then put them back into the jar on the shelf next to the jar"},
    {"text": "After the long winter the garden finally turned green again, and the first flowers were  tulips"},
    {"text": "They sailed for three days before they finally saw land. The captain smiled and said we have reached the island."},
    {"text": "Word"},
]

OPENBOOKQA = [
    {"id": "7-980", "question_stem": "The sun is responsible for",
     "choices": {"text": ["puppies learning new tricks", "children growing up and getting old",
                          "flowers wilting in a vase", "plants sprouting, blooming and wilting"],
                 "label": ["A", "B", "C", "D"]}, "answerKey": "D"},
    {"id": "7-584", "question_stem": "When standing miles away from Mount Rushmore",
     "choices": {"text": ["the mountains seem very close", "the mountains are boring",
                          "the mountains look the same as from up close", "the mountains seem smaller than in photographs"],
                 "label": ["A", "B", "C", "D"]}, "answerKey": "D"},
    {"id": "9-1", "question_stem": "A magnet will stick to",
     "choices": {"text": ["a wooden spoon", "an iron nail", "a glass cup", "a paper towel"],
                 "label": ["A", "B", "C", "D"]}, "answerKey": " B"},
    {"id": "9-2", "question_stem": "Water boils at",
     "choices": {"text": ["100 °C at sea level", "10 °C", "0 °C", "-40 °C"],
                 "label": ["A", "B", "C", "D"]}, "answerKey": "A"},
    {"id": "9-3", "question_stem": "Which of these is a source of light?",
     "choices": {"text": ["the Moon", "a candle flame", "a mirror", "a rock"],
                 "label": ["A", "B", "C", "D"]}, "answerKey": "B"},
]

JSONL = [
    {"context": "The capital of France is", "choices": ["Paris", "a large dog", "blue"], "gold": 0},
    {"context": "", "choices": ["The sun is hot.", "The sun is cold."], "gold": 0},
    {"context": "Question: What colour is the sky?\nAnswer:\n", "choices": ["blue", "green"], "gold": 0},
    {"context": "<s>Question: Is ice cold?\nAnswer:", "choices": ["yes", "no"], "gold": 0},
    {"context": "Le café est", "choices": ["très chaud", "froid"], "gold": 0},
    {"context": "Count: one, two,", "choices": ["three", "ten", "three, four"], "gold": 0},
]

FORMATS = {
    # format: (documents, lm-eval task yaml, split the task evaluates)
    "piqa": (PIQA, "piqa/piqa.yaml", "validation"),
    "arc": (ARC, "arc/arc_easy.yaml", "test"),
    "hellaswag": (HELLASWAG, "hellaswag/hellaswag.yaml", "validation"),
    "winogrande": (WINOGRANDE, "winogrande/default.yaml", "validation"),
    "boolq": (BOOLQ, "super_glue/boolq/default.yaml", "validation"),
    "copa": (COPA, "super_glue/copa/default.yaml", "validation"),
    "lambada": (LAMBADA, "lambada/lambada_openai.yaml", "test"),
    "openbookqa": (OPENBOOKQA, "openbookqa/openbookqa.yaml", "test"),
    "jsonl": (JSONL, None, "validation"),
}

# (case name, format, lm-eval version label, HFLM keyword arguments)
CASES = [(f, f, "0.4.9.2+", {}) for f in FORMATS] + [
    ("piqa_v0.4.3", "piqa", "0.4.3-0.4.9.1", {"add_bos_token": False}),
    ("jsonl_v0.4.3", "jsonl", "0.4.3-0.4.9.1", {"add_bos_token": False}),
    ("jsonl_v0.4.0", "jsonl", "0.4.0-0.4.2", {"add_bos_token": False, "prefix_token_id": "EOS"}),
]

GENERIC_TEXT = """The quick brown fox jumps over the lazy dog. A question and an answer.
Water, light and soil help plants grow. The man and the woman walked to the town.
Answer the question: is it true or false? Yes, no, maybe. One, two, three, four.
"""

# --------------------------------------------------------------------------
# the tokenizer and the model
# --------------------------------------------------------------------------


def all_strings(value):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from all_strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from all_strings(v)


def train_tokenizer():
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=500, min_frequency=2, special_tokens=["<s>", "</s>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    corpus = [GENERIC_TEXT] + [s for docs, _, _ in FORMATS.values() for s in all_strings(docs)]
    tok.train_from_iterator(corpus, trainer=trainer)
    bos = tok.token_to_id("<s>")
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B",
                                                       special_tokens=[("<s>", bos)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>")


def reinit_(model, seed):
    """Weights N(0, 1/fan_in), embeddings N(0, 0.5^2), norms 1 + N(0, 0.2^2):
    logits of O(1) so the choices' loglikelihoods are well apart."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.copy_(1 + 0.2 * torch.randn(p.shape, generator=g))
            elif "embed" in name:
                p.copy_(0.5 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(torch.randn(p.shape, generator=g) / math.sqrt(p.shape[1]))


def build_model(tokenizer, out_dir):
    cfg = LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=MAX_POSITIONS,
                      rms_norm_eps=1e-5, rope_theta=10000.0, tie_word_embeddings=True,
                      bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    torch.manual_seed(0)
    model = LlamaForCausalLM(cfg).float().eval()
    reinit_(model, 1234)
    model.tie_weights()
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
    for extra in ("generation_config.json", "special_tokens_map.json", "chat_template.jinja"):
        path = os.path.join(out_dir, extra)
        if os.path.exists(path):
            os.remove(path)
    return model


# --------------------------------------------------------------------------
# lm-eval's requests, scores and metrics
# --------------------------------------------------------------------------


def write_jsonl(path, docs):
    with open(path, "w", encoding="utf-8") as f:
        for d in docs:
            f.write(json.dumps(d, ensure_ascii=False) + "\n")


def jsonl_task_config(split):
    # The user-task schema slimbench reads, as an lm-eval YAML task would declare it.
    return {"task": "sb_jsonl", "output_type": "multiple_choice", "doc_to_text": "{{context}}",
            "doc_to_choice": "{{choices}}", "doc_to_target": "{{gold}}", f"{split}_split": split,
            "metric_list": [{"metric": "acc"}, {"metric": "acc_norm"}], "metadata": {"version": 1.0}}


def lm_eval_task(fmt, data_path):
    _, yaml_rel, split = FORMATS[fmt]
    if yaml_rel:
        cfg = load_yaml(os.path.join(os.path.dirname(lm_eval.__file__), "tasks", yaml_rel))
        cfg.pop("tag", None)
    else:
        cfg = jsonl_task_config(split)
    cfg.update(dataset_path="json", dataset_name=None, dataset_kwargs={"data_files": {split: data_path}},
               training_split=None, validation_split=None, test_split=None)
    cfg[f"{split}_split"] = split
    task = ConfigurableTask(config=cfg)
    task.build_all_requests(limit=None, rank=0, world_size=1)
    return task


def plain_loglikelihood(model, ctx_toks, cont_toks):
    """ll and is_greedy from one transformers pass over the lm-eval input window."""
    inp = (ctx_toks + cont_toks)[-(MAX_POSITIONS + 1):][:-1]
    with torch.no_grad():
        logits = model(torch.tensor([inp])).logits[0].float()
    logp = torch.log_softmax(logits, dim=-1)[len(inp) - len(cont_toks):]
    target = torch.tensor(cont_toks)
    ll = logp.gather(1, target[:, None]).sum().item()
    greedy = bool((logp.argmax(-1) == target).all())
    return ll, greedy


def np_argmax(values):
    return int(np.argmax(np.array(values, dtype=np.float64)))


def run_case(name, fmt, version, hflm_kwargs, model_dir, model, lms):
    data_path = os.path.join(OUT, "data", f"{fmt}.jsonl")
    task = lm_eval_task(fmt, data_path)
    key = json.dumps(hflm_kwargs, sort_keys=True)
    if key not in lms:
        kw = dict(hflm_kwargs)
        if kw.get("prefix_token_id") == "EOS":
            kw["prefix_token_id"] = None
        lm = HFLM(pretrained=model_dir, device="cpu", dtype="float32", batch_size=1, **kw)
        if hflm_kwargs.get("prefix_token_id") == "EOS":
            lm.custom_prefix_token_id = lm.tokenizer.eos_token_id
        lms[key] = lm
    lm = lms[key]
    assert lm.max_length == MAX_POSITIONS, lm.max_length
    instances = sorted(task.instances, key=lambda i: (i.doc_id, i.idx))
    results = lm.loglikelihood(instances, disable_tqdm=True)

    docs = list(task.eval_docs)
    out_docs = []
    sums = {"acc": 0.0, "acc_norm": 0.0, "acc_bytes": 0.0, "ll": 0.0}
    for doc_id, doc in enumerate(docs):
        reqs = []
        for inst, (ll, greedy) in zip(instances, results):
            if inst.doc_id != doc_id:
                continue
            ctx, cont = inst.arguments
            # lm-eval's own tokenization of the pair, as _loglikelihood_tokens receives it
            if ctx == "":
                cont_enc = lm.tok_encode(cont, add_special_tokens=False)
                ctx_enc, cont_enc = (([lm.prefix_token_id], cont_enc) if lm.prefix_token_id != cont_enc[0]
                                     else (cont_enc[:1], cont_enc[1:]))
            else:
                ctx_enc, cont_enc = lm._encode_pair(ctx, cont)
            ll2, greedy2 = plain_loglikelihood(model, ctx_enc, cont_enc)
            assert abs(ll - ll2) <= 1e-5 * max(1.0, abs(ll)), (name, doc_id, ll, ll2)
            assert greedy == greedy2, (name, doc_id)
            reqs.append({"context": ctx, "continuation": cont, "context_tokens": len(ctx_enc),
                         "cont_tokens": cont_enc, "ll": ll, "is_greedy": bool(greedy)})
        metrics = task.process_results(doc, [(r["ll"], r["is_greedy"]) for r in reqs])
        entry = {"gold": None, "requests": reqs, "acc": float(metrics["acc"])}
        if fmt == "lambada":
            sums["ll"] += reqs[0]["ll"]
            entry["gold"] = 0
        else:
            choices = task.doc_to_choice(doc)
            gold = task.doc_to_text(doc) if task.multiple_input else task.doc_to_target(doc)
            gold = gold if isinstance(gold, int) else choices.index(gold) if gold in choices else int(gold)
            lls = [r["ll"] for r in reqs]
            byte_len = [len(c.encode("utf-8")) for c in choices]
            entry.update(gold=gold, choices=choices, pred=np_argmax(lls),
                         pred_norm=np_argmax([l / len(c) for l, c in zip(lls, choices)]),
                         pred_bytes=np_argmax([l / b for l, b in zip(lls, byte_len)]))
            entry["acc_bytes"] = float(entry["pred_bytes"] == gold)
            sums["acc_bytes"] += entry["acc_bytes"]
            if "acc_norm" in metrics:
                entry["acc_norm"] = float(metrics["acc_norm"])
                sums["acc_norm"] += entry["acc_norm"]
        sums["acc"] += entry["acc"]
        out_docs.append(entry)

    n = len(out_docs)
    agg = {"acc": sums["acc"] / n, "acc_bytes": sums["acc_bytes"] / n}
    if fmt == "lambada":
        agg = {"acc": sums["acc"] / n, "ppl": math.exp(-sums["ll"] / n)}
    elif "acc_norm" in out_docs[0]:
        agg["acc_norm"] = sums["acc_norm"] / n
    fixture = {"case": name, "format": fmt, "data": os.path.relpath(data_path, os.path.dirname(os.path.dirname(HERE))),
               "lm_eval_version": version, "lm_eval_installed": lm_eval.__version__,
               "hflm_kwargs": hflm_kwargs, "n": n, "metrics": agg, "docs": out_docs}
    with open(os.path.join(OUT, "expected", f"{name}.json"), "w", encoding="utf-8") as f:
        json.dump(fixture, f, ensure_ascii=False, indent=1)
    print(f"{name:14s} n={n} " + " ".join(f"{k}={v:.4f}" for k, v in agg.items()))


GREEDY_CANDIDATES = ["The man and the woman walked to the", "Water, light and soil help plants", "One, two, three,",
                     "Answer the question: is it true or", "The quick brown fox jumps over the"]


def greedy_lambada_doc(model, tokenizer):
    """A LAMBADA text whose last word is the model's own greedy choice, so
    that acc (= is_greedy) is 1 for at least one document."""
    prefixes = [" ".join(t.split(" ")[:k]) for t in GENERIC_TEXT.split("\n") for k in range(3, 12)]
    for ctx in GREEDY_CANDIDATES + prefixes:
        ids = tokenizer.encode(ctx)
        with torch.no_grad():
            best = int(model(torch.tensor([ids])).logits[0, -1].argmax())
        word = tokenizer.decode([best])
        text = ctx + word
        if word.startswith(" ") and word[1:].isalpha() and tokenizer.encode(text) == ids + [best]:
            print(f"greedy LAMBADA document: {text!r}")
            return {"text": text}
    raise RuntimeError("no candidate context has a one-token greedy word")


def check_tokenizer(tokenizer, model_dir):
    """The saved folder reloads to the same tokenizer, and BOS is added by default."""
    reloaded = transformers.AutoTokenizer.from_pretrained(model_dir)
    for text in ["Question: How?\nAnswer: yes", " café au lait", "<s>Hi"]:
        assert reloaded.encode(text) == tokenizer.encode(text), text
    assert reloaded.encode("a")[0] == tokenizer.bos_token_id


def main():
    if os.path.exists(OUT):
        shutil.rmtree(OUT)
    model_dir = os.path.join(OUT, "model")
    for d in (model_dir, os.path.join(OUT, "data"), os.path.join(OUT, "expected")):
        os.makedirs(d)
    tokenizer = train_tokenizer()
    build_model(tokenizer, model_dir)
    check_tokenizer(tokenizer, model_dir)
    model = LlamaForCausalLM.from_pretrained(model_dir, dtype=torch.float32, attn_implementation="eager").eval()
    LAMBADA.append(greedy_lambada_doc(model, tokenizer))
    for fmt, (docs, _, _) in FORMATS.items():
        write_jsonl(os.path.join(OUT, "data", f"{fmt}.jsonl"), docs)
    lms = {}
    for name, fmt, version, kw in CASES:
        run_case(name, fmt, version, kw, model_dir, model, lms)
    shutil.rmtree(CACHE, ignore_errors=True)
    total = sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(OUT) for f in fs)
    print(f"wrote {OUT} ({total / 1024:.0f} KiB)")


if __name__ == "__main__":
    sys.exit(main())
