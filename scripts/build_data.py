"""Rebuild the text corpora and MTEB tasks that ship inside layerscope.

What it writes
--------------
Into ``src/layerscope/data/`` (package data, installed with layerscope):

``corpora/wordnet_glosses.parquet``
    WordNet definitions of 6 words or more, all parts of speech.
``corpora/wordnet_examples.parquet``
    Quoted example sentences from WordNet glosses, 6 words or more.
``corpora/kjv.parquet``
    Verses of the King James Bible, in canonical order.
``tasks/*.parquet``
    The five offline MTEB tasks that ``layerscope.tasks`` defines (a noun
    category classification and clustering, a gloss similarity STS, a
    same-sense pair classification and a gloss reranking).
``MANIFEST.json``
    Rows, bytes and SHA-256 of every file, the seed and the source packages.
``LICENSES.md``
    Each source's licence notice and provenance.

Every file is a sample, drawn with ``random.Random(f"{seed}:{product}")``
(one generator per file), so a rebuild with the same seed and the same source
packages gives the same bytes; about 30 s.

Where the text comes from
-------------------------
Debian packages, present on a developer's machine, never needed at run time:

* ``wordnet-base`` (Princeton WordNet 3.0): ``data.{noun,verb,adj,adv}`` and
  the morphological exception lists ``{noun,verb,adj}.exc``;
* ``bible-kjv-text`` with ``bible-kjv`` (its reader, the ``bible`` program,
  prints the verses the package stores compressed).

The ``fortunes`` package is not used: its cookie files quote many authors
whose terms the package does not state. Nothing from gensim's test data is
used either: the Lee corpus documents are news articles with no stated
licence, so the similarity task is built from WordNet's own taxonomy.

How the tasks avoid lexical leaks
---------------------------------
A randomly initialised transformer with mean pooling behaves much like a
random projection of the bag of word pieces, so any label that can be read
off shared words is within its reach. Every task therefore forbids shared
content words between the texts whose relation is the label: a content word
is an alphabetic token of 3 letters or more outside a small stop list,
compared on its first 5 letters after undoing irregular inflections
(WordNet's exception lists). In detail:

* category classification: a test definition shares no content word with
  the training definitions of its class; clustering: no two definitions of
  a class share one; a synset's own lemmas are removed from its definition;
* gloss STS: the two glosses of a pair share no content word;
* same-sense pairs: each lemma gives one positive and one negative pair with
  the same anchor sentence; all three sentences use the same form of the
  lemma, the two partners have the same length and share as many words with
  the anchor, and the sentences of a pair share no content word but the
  lemma itself (without these, the random control scored 0.57 AP);
* gloss reranking: the query shares no content word with any candidate gloss,
  and the lemma is removed from the glosses.

How to run
----------
On a Debian machine with ``wordnet-base``, ``bible-kjv`` and pandas/pyarrow::

    apt-get install wordnet-base bible-kjv bible-kjv-text
    python scripts/build_data.py            # writes src/layerscope/data/
    python scripts/build_data.py --seed 1 --out /tmp/data   # another draw
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import itertools
import json
import logging
import random
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

logger = logging.getLogger("build_data")

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "src" / "layerscope" / "data"
WORDNET_DIR = Path("/usr/share/wordnet")
WORDNET_COPYRIGHT = Path("/usr/share/doc/wordnet-base/copyright")
KJV_COPYRIGHT = Path("/usr/share/doc/bible-kjv-text/copyright")

# The lexicographer files of WordNet 3.0 (lexnames), indexed by field 2 of a
# synset line.
LEXNAMES = (
    "adj.all adj.pert adv.all noun.Tops noun.act noun.animal noun.artifact "
    "noun.attribute noun.body noun.cognition noun.communication noun.event "
    "noun.feeling noun.food noun.group noun.location noun.motive noun.object "
    "noun.person noun.phenomenon noun.plant noun.possession noun.process "
    "noun.quantity noun.relation noun.shape noun.state noun.substance noun.time "
    "verb.body verb.change verb.cognition verb.communication verb.competition "
    "verb.consumption verb.contact verb.creation verb.emotion verb.motion "
    "verb.perception verb.possession verb.social verb.stative verb.weather "
    "adj.ppl"
).split()
# noun.Tops (51 synsets) and noun.motive (42) are too small to sample from.
CATEGORY_CLASSES = [
    name
    for name in LEXNAMES
    if name.startswith("noun.") and name not in ("noun.Tops", "noun.motive")
]
WORDNET_ROOT = ("n", "00001740")  # entity

STOP_WORDS = frozenset(
    """
    a an the and or but nor of in on at to for from by with without within into
    onto upon over under above below between among through during before after
    about against along across around as than then that which who whom whose
    what when where why how this these those there here it its itself they them
    their he him his she her we us our you your i me my one ones some any all
    each every no not none both either neither other others another such same
    so very too more most less least much many few several be is are was were
    been being am have has had having do does did doing can could may might
    must shall should will would if else also only just even still yet ever
    often usually especially etc something someone somebody thing things used
    use make made way kind sort type form part
    """.split()
)
WORD = re.compile(r"[A-Za-z][A-Za-z'-]*")
POS_FILES = {"n": "noun", "v": "verb", "a": "adj", "r": "adv"}


@dataclass
class Synset:
    """One WordNet synset, as read from a ``data.*`` line."""

    pos: str  # n, v, a or r (satellite adjectives are folded into a)
    offset: str
    lexname: str
    lemmas: list[str]  # display forms: spaces, no adjective markers
    definition: str
    examples: list[str]
    hypernyms: list[tuple[str, str]] = field(default_factory=list)

    @property
    def key(self) -> tuple[str, str]:
        return (self.pos, self.offset)

    @property
    def id(self) -> str:
        return f"{self.pos}{self.offset}"


# --------------------------------------------------------------------------
# Reading the sources


def read_wordnet(folder: Path) -> dict[tuple[str, str], Synset]:
    """Parse ``data.noun``, ``data.verb``, ``data.adj`` and ``data.adv``."""
    synsets = {}
    for pos, name in POS_FILES.items():
        with open(folder / f"data.{name}", encoding="latin-1") as lines:
            for line in lines:
                if line.startswith("  "):  # the licence header
                    continue
                synset = _parse_synset_line(line, pos)
                synsets[synset.key] = synset
    logger.info("read %d synsets from %s", len(synsets), folder)
    return synsets


def _parse_synset_line(line: str, pos: str) -> Synset:
    head, _, gloss = line.partition(" | ")
    fields = head.split()
    offset, lexnum = fields[0], int(fields[1])
    n_words = int(fields[3], 16)
    words = fields[4 : 4 + 2 * n_words : 2]
    lemmas = [re.sub(r"\((a|p|ip)\)$", "", w).replace("_", " ") for w in words]

    i = 4 + 2 * n_words
    n_pointers = int(fields[i])
    hypernyms = []
    for k in range(n_pointers):
        symbol, target, target_pos = fields[i + 1 + 4 * k : i + 4 + 4 * k]
        if symbol in ("@", "@i"):
            hypernyms.append((target_pos, target))

    definition, examples = split_gloss(gloss)
    return Synset(
        pos=pos,
        offset=offset,
        lexname=LEXNAMES[lexnum],
        lemmas=lemmas,
        definition=definition,
        examples=examples,
        hypernyms=hypernyms,
    )


def split_gloss(gloss: str) -> tuple[str, list[str]]:
    """Split a gloss into its definition and its quoted example sentences."""
    gloss = gloss.strip()
    examples = [e.strip() for e in re.findall(r'"([^"]+)"', gloss)]
    definition = gloss.split('"')[0].strip().rstrip(";").strip()
    return definition, [e for e in examples if e]


def read_exceptions(folder: Path) -> dict[str, str]:
    """Irregular inflected form -> base form, from WordNet's ``*.exc`` lists."""
    base_of = {}
    for name in ("noun", "verb", "adj"):
        with open(folder / f"{name}.exc", encoding="latin-1") as lines:
            for line in lines:
                inflected, base, *_ = line.split()
                base_of.setdefault(inflected, base)
    return base_of


def read_kjv() -> pd.DataFrame:
    """All verses of the KJV, through the ``bible`` program of bible-kjv."""
    text = subprocess.run(
        ["bible", "-l100000", "Gen1:1-Rev22:21"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    rows, book, chapter = [], None, None
    for line in text.splitlines():
        header = re.fullmatch(r"(\S.*) (\d+)", line)
        verse = re.fullmatch(r"\s+(\d+) (.+)", line)
        if header:
            book, chapter = header.group(1), int(header.group(2))
        elif verse:
            n = int(verse.group(1))
            rows.append((f"{book} {chapter}:{n}", book, chapter, n, verse.group(2)))
    frame = pd.DataFrame(rows, columns=["id", "book", "chapter", "verse", "text"])
    logger.info("read %d KJV verses", len(frame))
    return frame


# --------------------------------------------------------------------------
# Words, stems and overlap


class Lexicon:
    """Content words, stems and inflected forms, with WordNet's exceptions."""

    def __init__(self, base_of: dict[str, str]):
        self.base_of = base_of
        self.forms_of = collections.defaultdict(set)
        for inflected, base in base_of.items():
            self.forms_of[base].add(inflected)

    def stem(self, word: str) -> str:
        word = word.lower()
        return self.base_of.get(word, word)[:5]

    def content_stems(self, text: str) -> set[str]:
        return {
            self.stem(w)
            for w in WORD.findall(text)
            if len(w) >= 3 and w.lower() not in STOP_WORDS
        }

    def forms(self, lemma: str) -> set[str]:
        """Regular and irregular inflections of a one-word lemma, lowercase."""
        lemma = lemma.lower()
        forms = {lemma, lemma + "s", lemma + "es", lemma + "ed", lemma + "ing"}
        forms |= {lemma + "d", lemma + "r", lemma + "st"}
        if lemma.endswith("e"):
            forms.add(lemma[:-1] + "ing")
        if lemma.endswith("y"):
            forms |= {lemma[:-1] + "ies", lemma[:-1] + "ied"}
        if len(lemma) > 2 and lemma[-1] not in "aeiouwxy":
            forms |= {lemma + lemma[-1] + "ed", lemma + lemma[-1] + "ing"}
        return forms | self.forms_of.get(lemma, set())

    def remove_words(self, text: str, lemmas: list[str]) -> str:
        """Drop every lemma (and its inflections) from ``text``."""
        words = set()
        for lemma in lemmas:
            words |= self.forms(lemma) if " " not in lemma else {lemma.lower()}
        lowered = text.lower()
        if not any(word in lowered for word in words):
            return text
        pattern = "|".join(sorted((re.escape(w) for w in words), key=len)[::-1])
        text = re.sub(rf"(?i)\b(?:{pattern})\b", "", text)
        text = re.sub(r"\s+([,;:.)])", r"\1", re.sub(r"\s{2,}", " ", text))
        return re.sub(r"\(\s*\)", "", text).strip(" ,;")


def n_words(text: str) -> int:
    return len(text.split())


# --------------------------------------------------------------------------
# Corpora


def build_corpora(
    synsets: dict[tuple[str, str], Synset],
    kjv: pd.DataFrame,
    rng: random.Random,
    size: int,
) -> dict[str, pd.DataFrame]:
    """Unlabelled text for the metrics stage: glosses, examples and verses."""
    ordered = sorted(synsets.values(), key=lambda s: s.key)
    glosses = [
        (s.id, s.definition, s.pos, s.lexname)
        for s in ordered
        if n_words(s.definition) >= 6
    ]
    examples = [
        (f"{s.id}.{k}", e, s.pos, s.lexname)
        for s in ordered
        for k, e in enumerate(s.examples)
        if n_words(e) >= 6
    ]
    columns = ["id", "text", "pos", "lexname"]
    verses = kjv[kjv["text"].map(n_words) >= 6]
    picked = sorted(rng.sample(range(len(verses)), size))
    return {
        "wordnet_glosses": pd.DataFrame(
            sorted(rng.sample(glosses, size)), columns=columns
        ),
        "wordnet_examples": pd.DataFrame(
            sorted(rng.sample(examples, size)), columns=columns
        ),
        "kjv": verses.iloc[picked].reset_index(drop=True),
    }


# --------------------------------------------------------------------------
# Noun category classification and clustering


def category_pools(
    synsets: dict[tuple[str, str], Synset], lexicon: Lexicon
) -> dict[str, list[tuple[str, str]]]:
    """Lexicographer file -> (synset id, definition without its lemmas)."""
    pools = collections.defaultdict(list)
    for s in sorted(synsets.values(), key=lambda s: s.key):
        if s.pos != "n" or s.lexname not in CATEGORY_CLASSES:
            continue
        text = lexicon.remove_words(s.definition, s.lemmas)
        if 6 <= n_words(text) <= 30:
            pools[s.lexname].append((s.id, text))
    return pools


def build_category_classification(
    pools: dict[str, list[tuple[str, str]]],
    lexicon: Lexicon,
    rng: random.Random,
    n_train: int,
    n_test: int,
) -> pd.DataFrame:
    """Noun definitions labelled by lexicographer file, train and test.

    A test definition shares no content word with any training definition
    of its own class.
    """
    rows = []
    for label in CATEGORY_CLASSES:
        pool = pools[label][:]
        rng.shuffle(pool)
        train = pool[:n_train]
        seen = set().union(*(lexicon.content_stems(text) for _, text in train))
        test = [
            item for item in pool[n_train:] if not lexicon.content_stems(item[1]) & seen
        ][:n_test]
        if len(test) < n_test:
            raise RuntimeError(f"{label}: only {len(test)} test definitions")
        rows += [(sid, text, label, "train") for sid, text in train]
        rows += [(sid, text, label, "test") for sid, text in test]
    return pd.DataFrame(rows, columns=["id", "text", "label", "split"])


def build_category_clustering(
    pools: dict[str, list[tuple[str, str]]],
    lexicon: Lexicon,
    rng: random.Random,
    n_per_class: int,
    n_classes: int,
) -> pd.DataFrame:
    """Noun definitions of the ``n_classes`` largest lexicographer files.

    No two definitions of the same class share a content word; the smallest
    files hold too few such definitions, hence the largest only.
    """
    largest = sorted(CATEGORY_CLASSES, key=lambda label: -len(pools[label]))
    rows = []
    for label in sorted(largest[:n_classes]):
        pool = pools[label][:]
        rng.shuffle(pool)
        picked = _pick_disjoint(pool, lexicon, n_per_class)
        rows += [(sid, text, label) for sid, text in picked]
    return pd.DataFrame(rows, columns=["id", "text", "labels"])


def _pick_disjoint(
    pool: list[tuple[str, str]], lexicon: Lexicon, n: int
) -> list[tuple[str, str]]:
    """Greedily take items whose content stems are new to the picked set."""
    seen: set[str] = set()
    picked = []
    for sid, text in pool:
        stems = lexicon.content_stems(text)
        if stems and not stems & seen:
            picked.append((sid, text))
            seen |= stems
            if len(picked) == n:
                return picked
    raise RuntimeError(f"only {len(picked)} of {n} definitions without overlap")


# --------------------------------------------------------------------------
# Gloss similarity (Wu-Palmer) STS


class Taxonomy:
    """The noun hypernym graph, for Wu & Palmer's similarity."""

    def __init__(self, synsets: dict[tuple[str, str], Synset]):
        self.synsets = synsets
        self._up: dict[tuple[str, str], dict[tuple[str, str], int]] = {}

    def ancestors(self, key: tuple[str, str]) -> dict[tuple[str, str], int]:
        """Each ancestor (the synset included) -> its fewest hypernym steps."""
        if key not in self._up:
            distance = {key: 0}
            frontier = [key]
            while frontier:
                following = []
                for node in frontier:
                    for parent in self.synsets[node].hypernyms:
                        if parent not in distance:
                            distance[parent] = distance[node] + 1
                            following.append(parent)
                frontier = following
            self._up[key] = distance
        return self._up[key]

    def depth(self, key: tuple[str, str]) -> int:
        """Nodes on the shortest path to the root, the root being depth 1."""
        return self.ancestors(key)[WORDNET_ROOT] + 1

    def wu_palmer(self, a: tuple[str, str], b: tuple[str, str]) -> float:
        """2·depth(c) / (d(a, c) + d(b, c) + 2·depth(c)), best common c."""
        up_a, up_b = self.ancestors(a), self.ancestors(b)
        best = 0.0
        for c in up_a.keys() & up_b.keys():
            twice = 2 * self.depth(c)
            best = max(best, twice / (up_a[c] + up_b[c] + twice))
        return best


def build_gloss_sts(
    synsets: dict[tuple[str, str], Synset],
    lexicon: Lexicon,
    rng: random.Random,
    n_per_bin: int,
    n_bins: int = 5,
) -> pd.DataFrame:
    """Pairs of noun definitions scored by 5 × Wu-Palmer similarity.

    Pairs are drawn near each other in the taxonomy (siblings, cousins, same
    lexicographer file) and at random, then stratified into equal-count bins
    of similarity. The two definitions of a pair share no content word, and
    no definition appears twice.
    """
    taxonomy = Taxonomy(synsets)
    nouns = [
        s
        for s in sorted(synsets.values(), key=lambda s: s.key)
        if s.pos == "n" and WORDNET_ROOT in taxonomy.ancestors(s.key)
    ]
    text_of = {}
    for s in nouns:
        text = lexicon.remove_words(s.definition, s.lemmas)
        if 6 <= n_words(text) <= 30:
            text_of[s.key] = text
    keys = sorted(text_of)
    children = collections.defaultdict(list)
    for key in keys:
        for parent in synsets[key].hypernyms:
            children[parent].append(key)
    by_lexname = collections.defaultdict(list)
    for key in keys:
        by_lexname[synsets[key].lexname].append(key)

    def relative(key):
        """A partner for ``key``: sibling, cousin, same file, or anyone."""
        how = rng.random()
        parents = synsets[key].hypernyms
        if how < 0.3 and parents:
            return rng.choice(children[rng.choice(parents)] or [key])
        if how < 0.55 and parents:
            grand = synsets[rng.choice(parents)].hypernyms
            if grand:
                uncles = children[rng.choice(grand)] or [key]
                return rng.choice(children[rng.choice(uncles)] or [key])
        if how < 0.8:
            return rng.choice(by_lexname[synsets[key].lexname])
        return rng.choice(keys)

    bins = [[] for _ in range(n_bins)]
    used: set[tuple[str, str]] = set()
    for _ in range(400_000):
        if all(len(b) >= n_per_bin for b in bins):
            break
        a = rng.choice(keys)
        b = relative(a)
        if a == b or a in used or b in used:
            continue
        if lexicon.content_stems(text_of[a]) & lexicon.content_stems(text_of[b]):
            continue
        score = taxonomy.wu_palmer(a, b)
        slot = bins[min(int(score * n_bins), n_bins - 1)]
        if len(slot) < n_per_bin:
            slot.append((a, b, score))
            used |= {a, b}

    rows = [
        (
            synsets[a].id,
            synsets[b].id,
            text_of[a],
            text_of[b],
            round(5 * score, 4),
        )
        for a, b, score in itertools.chain.from_iterable(bins)
    ]
    logger.info("gloss STS: bins of %s pairs", [len(b) for b in bins])
    rng.shuffle(rows)
    return pd.DataFrame(rows, columns=["id1", "id2", "sentence1", "sentence2", "score"])


# --------------------------------------------------------------------------
# Example sentences of one lemma: same-sense pairs and gloss reranking


def examples_by_lemma(
    synsets: dict[tuple[str, str], Synset], lexicon: Lexicon, min_words: int
) -> dict[tuple[str, str], dict[tuple[str, str], list[tuple[str, str]]]]:
    """(lemma, pos) -> synset -> (example sentence, form of the lemma in it).

    Only one-word lemmas, and only examples in which exactly one inflection
    of the lemma occurs as a word.
    """
    found = collections.defaultdict(lambda: collections.defaultdict(list))
    for s in sorted(synsets.values(), key=lambda s: s.key):
        for lemma in s.lemmas:
            if not lemma.isalpha():
                continue
            forms = lexicon.forms(lemma)
            for example in s.examples:
                used = {w.lower() for w in WORD.findall(example)} & forms
                if n_words(example) >= min_words and len(used) == 1:
                    found[(lemma.lower(), s.pos)][s.key].append((example, used.pop()))
    return found


def build_same_sense_pairs(
    synsets: dict[tuple[str, str], Synset],
    lexicon: Lexicon,
    rng: random.Random,
    n_lemmas: int,
    max_gap: int = 0,
) -> pd.DataFrame:
    """WiC-like pairs: do two sentences use a word in the same sense?

    For each lemma, one anchor sentence gives a positive pair (another
    sentence of the same synset) and a negative pair (a sentence of another
    synset of the same lemma and part of speech). All three sentences use
    the same form of the word; outside it, the two sentences of a pair share
    no content word. The two second sentences have the same number of words
    and share as many words (stop words included) with the anchor, up to a
    total difference of ``max_gap``.
    """
    by_lemma = examples_by_lemma(synsets, lexicon, min_words=4)
    candidates = []
    for (lemma, pos), senses in sorted(by_lemma.items()):
        triples = _same_sense_triples(lemma, senses, lexicon, max_gap)
        if triples:
            candidates.append((lemma, pos, rng.choice(triples)))

    rng.shuffle(candidates)
    rows = []
    for lemma, pos, (sense, anchor, same, other, different) in sorted(
        candidates[:n_lemmas]
    ):
        rows.append((lemma, pos, synsets[sense].id, synsets[sense].id, anchor, same, 1))
        rows.append(
            (lemma, pos, synsets[sense].id, synsets[other].id, anchor, different, 0)
        )
    logger.info("same-sense pairs: %d lemmas available", len(candidates))
    columns = ["lemma", "pos", "id1", "id2", "sentence1", "sentence2", "labels"]
    return pd.DataFrame(rows, columns=columns)


def _same_sense_triples(
    lemma: str,
    senses: dict[tuple[str, str], list[tuple[str, str]]],
    lexicon: Lexicon,
    max_gap: int,
) -> list[tuple]:
    """Every admissible (sense, anchor, same, other sense, different)."""
    ignore = {lexicon.stem(form) for form in lexicon.forms(lemma)}
    stems = {
        sentence: lexicon.content_stems(sentence) - ignore
        for examples in senses.values()
        for sentence, _ in examples
    }
    words = {
        sentence: {w.lower() for w in WORD.findall(sentence)} for sentence in stems
    }

    triples = []
    for sense, examples in sorted(senses.items()):
        others = [
            (other, example)
            for other, other_examples in sorted(senses.items())
            if other != sense
            for example in other_examples
        ]
        for (anchor, form), (same, form_same) in itertools.permutations(examples, 2):
            for other, (different, form_different) in others:
                if not form == form_same == form_different:
                    continue
                if stems[anchor] & (stems[same] | stems[different]):
                    continue
                gap = abs(n_words(same) - n_words(different)) + abs(
                    len(words[anchor] & words[same])
                    - len(words[anchor] & words[different])
                )
                if gap <= max_gap:
                    triples.append((sense, anchor, same, other, different))
    return triples


def build_gloss_reranking(
    synsets: dict[tuple[str, str], Synset],
    lexicon: Lexicon,
    rng: random.Random,
    n_queries: int,
    max_candidates: int,
    queries_per_lemma: int = 2,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """An example sentence ranks the definitions of its lemma's senses.

    The candidates are the definitions of every synset of the lemma with the
    same part of speech (the gold one and up to ``max_candidates - 1``
    others), with the lemma removed. A query shares no content word with any
    of its candidates, outside the lemma itself.
    """
    by_lemma = examples_by_lemma(synsets, lexicon, min_words=5)
    senses_of = collections.defaultdict(list)
    for s in sorted(synsets.values(), key=lambda s: s.key):
        for lemma in s.lemmas:
            senses_of[(lemma.lower(), s.pos)].append(s.key)

    per_lemma = []
    for (lemma, pos), with_examples in sorted(by_lemma.items()):
        senses = senses_of[(lemma, pos)]
        if len(senses) < 3:
            continue
        ignore = {lexicon.stem(f) for f in lexicon.forms(lemma)}
        gloss_of = {
            key: lexicon.remove_words(synsets[key].definition, [lemma])
            for key in senses
        }
        if len(set(gloss_of.values())) < len(senses):
            continue
        options = []
        for gold, sentences in sorted(with_examples.items()):
            others = [k for k in senses if k != gold]
            rng.shuffle(others)
            candidates = sorted([gold] + others[: max_candidates - 1])
            gloss_stems = set().union(
                *(lexicon.content_stems(gloss_of[k]) for k in candidates)
            )
            for sentence, _ in sentences:
                if not (lexicon.content_stems(sentence) - ignore) & gloss_stems:
                    options.append((gold, sentence, candidates))
                    break
        if options:
            rng.shuffle(options)
            per_lemma.append((lemma, pos, options[:queries_per_lemma], gloss_of))

    rng.shuffle(per_lemma)
    queries, corpus = [], {}
    for lemma, pos, options, gloss_of in per_lemma:
        for gold, sentence, candidates in options[: n_queries - len(queries)]:
            doc_ids = [f"{synsets[k].id}.{lemma}" for k in candidates]
            for key, doc_id in zip(candidates, doc_ids):
                corpus[doc_id] = gloss_of[key]
            gold_id = f"{synsets[gold].id}.{lemma}"
            query_id = f"q{len(queries):04d}"
            queries.append((query_id, sentence, lemma, pos, gold_id, doc_ids))
    logger.info("gloss reranking: %d lemmas available", len(per_lemma))
    return (
        pd.DataFrame(
            queries, columns=["id", "text", "lemma", "pos", "gold", "candidates"]
        ),
        pd.DataFrame(sorted(corpus.items()), columns=["id", "text"]),
    )


# --------------------------------------------------------------------------
# Licences, manifest and main


def package_version(name: str) -> str:
    try:
        return subprocess.run(
            ["dpkg-query", "-W", "-f=${Version}", name],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def licence_paragraph(copyright_file: Path, licence: str) -> str:
    """The text of one ``License:`` paragraph of a Debian copyright file."""
    text = copyright_file.read_text()
    match = re.search(
        rf"^License: {re.escape(licence)}\n((?: .*\n?)+)", text, re.MULTILINE
    )
    if match is None:
        raise ValueError(f"no License: {licence} paragraph in {copyright_file}")
    lines = [line[1:] for line in match.group(1).splitlines()]
    return "\n".join("" if line == "." else line for line in lines)


def write_licenses(out: Path, versions: dict[str, str]) -> None:
    wordnet = licence_paragraph(WORDNET_COPYRIGHT, "WordNet3.0")
    kjv = "\n".join(line.rstrip() for line in KJV_COPYRIGHT.read_text().splitlines())
    kjv = kjv.strip("\n")
    text = f"""# Licences and provenance of layerscope's shipped data

Every file under this folder was made by `scripts/build_data.py` from the
Debian packages named below; `MANIFEST.json` lists the files with their
checksums. The derived files are samples of the sources, with words removed
from some definitions (see the script's docstring); nothing else was added.

## WordNet 3.0

Used for `corpora/wordnet_glosses.parquet`, `corpora/wordnet_examples.parquet`
and every file under `tasks/`.

- Debian package `wordnet-base`, version {versions["wordnet-base"]}
- files `/usr/share/wordnet/data.noun`, `data.verb`, `data.adj`, `data.adv`,
  `noun.exc`, `verb.exc`, `adj.exc`
- upstream: Princeton University, <https://wordnet.princeton.edu/>

The WordNet licence, as the package states it, applies to these files:

```
{wordnet}
```

## King James Version of the Bible

Used for `corpora/kjv.parquet`.

- Debian package `bible-kjv-text`, version {versions["bible-kjv-text"]}, read
  with the `bible` program of `bible-kjv`, version {versions["bible-kjv"]}
- file `/usr/lib/bible.data`

The text of the King James translation (1611) is in the public domain
(in the United Kingdom it remains under the Crown's letters patent). The
package's copyright file, which carries the notice for its data files, reads:

```
{kjv}
```

## Not used

- `fortunes`: its cookie files quote many authors, and the package does not
  state terms for the quotations themselves.
- gensim's test data (the Lee corpus and its human similarity ratings): the
  documents are news articles with no stated licence.
"""
    (out / "LICENSES.md").write_text(text)


def write_parquet(frame: pd.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(path, index=False, compression="zstd")


def write_manifest(out: Path, seed: int, versions: dict[str, str]) -> None:
    files = {}
    for path in sorted(out.rglob("*.parquet")):
        data = path.read_bytes()
        files[path.relative_to(out).as_posix()] = {
            "rows": len(pd.read_parquet(path)),
            "bytes": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
        }
    manifest = {"seed": seed, "sources": versions, "files": files}
    (out / "MANIFEST.json").write_text(json.dumps(manifest, indent=2) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--wordnet", type=Path, default=WORDNET_DIR)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--corpus-size", type=int, default=3000)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    synsets = read_wordnet(args.wordnet)
    lexicon = Lexicon(read_exceptions(args.wordnet))
    kjv = read_kjv()
    versions = {
        name: package_version(name)
        for name in ("wordnet-base", "bible-kjv-text", "bible-kjv")
    }

    for sub in ("corpora", "tasks"):
        shutil.rmtree(args.out / sub, ignore_errors=True)

    # One generator per product, so that changing one leaves the others alone.
    def rng(name: str) -> random.Random:
        return random.Random(f"{args.seed}:{name}")

    corpora = build_corpora(synsets, kjv, rng("corpora"), args.corpus_size)
    for name, frame in corpora.items():
        write_parquet(frame, args.out / "corpora" / f"{name}.parquet")

    pools = category_pools(synsets, lexicon)
    queries, corpus = build_gloss_reranking(
        synsets, lexicon, rng("reranking"), n_queries=500, max_candidates=8
    )
    tasks = {
        "wordnet_noun_category_classification": build_category_classification(
            pools, lexicon, rng("classification"), n_train=24, n_test=16
        ),
        "wordnet_noun_category_clustering": build_category_clustering(
            pools, lexicon, rng("clustering"), n_per_class=40, n_classes=20
        ),
        "wordnet_noun_gloss_sts": build_gloss_sts(
            synsets, lexicon, rng("sts"), n_per_bin=200
        ),
        "wordnet_same_sense_pair_classification": build_same_sense_pairs(
            synsets, lexicon, rng("pairs"), n_lemmas=500
        ),
        "wordnet_gloss_reranking_queries": queries,
        "wordnet_gloss_reranking_corpus": corpus,
    }
    for name, frame in tasks.items():
        write_parquet(frame, args.out / "tasks" / f"{name}.parquet")
        logger.info("%s: %d rows", name, len(frame))

    write_licenses(args.out, versions)
    write_manifest(args.out, args.seed, versions)
    total = sum(p.stat().st_size for p in args.out.rglob("*") if p.is_file())
    logger.info("wrote %s (%.2f MB)", args.out, total / 1e6)


if __name__ == "__main__":
    main()
