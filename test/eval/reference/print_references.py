"""Prints the CPython / lm-eval values that test/eval/*.test.ts hard-codes, so each can be rebuilt.

    .venv/bin/python test/eval/reference/print_references.py [DATA_DIR]

DATA_DIR is the shared benchmarks folder (default ../shared/data/benchmarks); without it the
lambada line is left out. Versions the values were printed with: CPython 3.11.7, lm-eval 0.4.7.

- pyrandom.test.ts: CPython's `random` (MT19937), seeds and calls as in the test.
- metrics.test.ts "bootstrapStderr": lm-eval's `bootstrap_stderr(mean, xs, iters)` (chunks of
  min(1000, iters) resamples, chunk i drawn by random.Random(i).choices(xs, k=len(xs))), and
  "aggregateMetric": lm-eval's `perplexity` and `bootstrap_stderr(perplexity, lls, 1000)`.
- tasks.test.ts "lambada perplexity": the formula model's log-likelihoods (-3·sqrt(len(target)))
  of the first 20 lambada_openai docs (llm-foundry's ICL jsonl, text = context + " " +
  continuation, target = " " + last word), through lm-eval's `perplexity` and
  `bootstrap_stderr(perplexity, lls, 2000)`.
"""
import json
import math
import os
import random
import sys

from lm_eval.api.metrics import bootstrap_stderr, mean, perplexity


def main() -> None:
    print("pyrandom random()", random.Random(1234).random(), random.Random(2**40 + 5).random())
    print("pyrandom sample", random.Random(42).sample(range(10), 3), random.Random(1234).sample(range(20), 8))
    r = random.Random(1234)
    print("pyrandom sample(1000) then getrandbits(32)", r.sample(range(1000), 5), r.getrandbits(32))
    print("pyrandom choices", random.Random(0).choices(range(100), k=5))

    xs = [1, 0, 1, 1, 0, 1, 0, 0, 1, 1, 1, 0, 1, 1, 0, 1, 0, 1, 1, 1]
    for iters in (1000, 2000, 100):
        print(f"bootstrap_stderr(mean, xs, {iters})", repr(bootstrap_stderr(mean, xs, iters)))
    lls = [-1.5, -2.25, -0.75, -3.0, -1.0, -2.0, -0.5]
    print("perplexity(lls)", repr(perplexity(lls)), "bootstrap_stderr(perplexity, lls, 1000)", repr(bootstrap_stderr(perplexity, lls, 1000)))

    here = os.path.dirname(os.path.abspath(__file__))
    data = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "..", "..", "..", "..", "shared", "data", "benchmarks")
    path = os.path.join(data, "llm_foundry_icl", "language_understanding", "lambada_openai.jsonl")
    if not os.path.exists(path):
        print(f"lambada: {path} not found, skipped")
        return
    with open(path, encoding="utf-8") as f:
        rows = [json.loads(line) for line in f if line.strip()][:20]
    lls = []
    for row in rows:
        text = row["context"] + " " + row["continuation"]
        target = " " + text.split(" ")[-1]
        lls.append(-3 * math.sqrt(len(target)))
    print("lambada perplexity", repr(perplexity(lls)))
    print("lambada perplexity_stderr (2000 iters)", repr(bootstrap_stderr(perplexity, lls, 2000)))


if __name__ == "__main__":
    main()
