"""Seeded text augmentations for the invariance metrics (InfoNCE, LiDAR, DiME).

Each prompt gets ``n_views`` noisy copies made by three augmenters applied in
turn, the recipe of Skean et al. (2025), whose code chains nlpaug's
``SplitAug``, ``RandomCharAug`` and ``KeyboardAug`` with their default
settings:

1. word split: a word is cut in two by a space at a random position;
2. character edit: characters of a word are substituted (the default), or
   inserted, swapped with a neighbour or deleted;
3. keyboard typo: characters of a word are replaced by a QWERTY neighbour.

Each augmenter picks ``ceil(word_p * n_tokens)`` words, clamped to
``[word_min, word_max]``, among the words long enough to edit, and the
character augmenters then edit ``ceil(p * len(word))`` characters of each,
clamped to ``[min, max]``; these are nlpaug's counting rules and defaults.
The augmenters are written here rather than imported from nlpaug (see
``docs/augment.md``): every random draw comes from a ``numpy.random.Generator``
seeded from the text, the seed and the view index, so a view never depends on
the other texts of a batch, on their order, or on any global seed.

Only ASCII letters and digits are edited; other characters (non-ASCII
letters, punctuation, whitespace) are kept as they are, and the text between
the edited words is copied unchanged.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import math
import numbers
import re
import string
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["AugmentConfig", "augment_text", "make_views"]

logger = logging.getLogger(__name__)

CHAR_ACTIONS = ("insert", "substitute", "swap", "delete")

# Words are runs of Unicode word characters. Tokens, the base of the
# ``word_p`` counts, are words and single punctuation marks: nlpaug counts
# both, so counting both keeps the number of edits of the paper's recipe.
_WORD = re.compile(r"\w+")
_TOKEN = re.compile(r"\w+|[^\w\s]")

# nlpaug's RandomCharAug draws replacements from letters, digits and these.
_DEFAULT_CANDIDATES = (
    string.ascii_uppercase + string.ascii_lowercase + string.digits + "!@#$%^&*()_+"
)


def _qwerty_neighbours() -> dict[str, tuple[str, ...]]:
    """Keys next to each letter and digit key of a QWERTY keyboard.

    Keys are placed on their rows with the usual stagger (in key widths:
    digit row 0, top row 0.5, home row 0.75, bottom row 1.25); two keys are
    neighbours when they are side by side in a row, or on adjacent rows less
    than one key width apart.
    """
    rows = ("1234567890", "qwertyuiop", "asdfghjkl", "zxcvbnm")
    offsets = (0.0, 0.5, 0.75, 1.25)
    position = {
        key: (r, offsets[r] + c)
        for r, row in enumerate(rows)
        for c, key in enumerate(row)
    }

    neighbours = {}
    for key, (r, x) in position.items():
        neighbours[key] = tuple(
            other
            for other, (r2, x2) in position.items()
            if other != key
            and (
                (r2 == r and abs(x2 - x) == 1) or (abs(r2 - r) == 1 and abs(x2 - x) < 1)
            )
        )
    return neighbours


QWERTY_NEIGHBOURS: dict[str, tuple[str, ...]] = _qwerty_neighbours()


@dataclass(frozen=True)
class AugmentConfig:
    """Settings of the three augmenters; the defaults are the paper's.

    The defaults are nlpaug 1.1.11's defaults for ``SplitAug()``,
    ``RandomCharAug()`` and ``KeyboardAug()``, which the paper's code
    chains without arguments. Each augmenter edits
    ``ceil(*_word_p * n_tokens)`` words, tokens being words and punctuation
    marks, but at least ``*_word_min`` and at most ``*_word_max``, and only
    words of at least ``*_min_chars`` characters. In each such word, the
    character augmenters edit ``ceil(char_p * len(word))`` characters
    (``typo_p`` for typos), at least ``char_min`` and at most ``char_max``
    (``typo_min``, ``typo_max``). A probability of 0 switches its step off,
    where nlpaug would still edit ``*_min`` items.

    Parameters
    ----------
    split_word_p, split_word_min, split_word_max : float, int, int
        Words cut in two by a space (nlpaug ``SplitAug``: 0.3, 1, 10).
    split_min_chars : int
        Shortest word that is split (``min_char=4``); at least 2.
    char_word_p, char_word_min, char_word_max : float, int, int
        Words given random character edits (``RandomCharAug``: 0.3, 1, 10).
    char_p, char_min, char_max : float, int, int
        Characters edited in each such word (0.3, 1, 10).
    char_min_chars : int
        Shortest word given character edits (``min_char=4``).
    char_actions : tuple of str
        Edits to draw from, one per word, uniformly: any of ``"insert"``,
        ``"substitute"``, ``"swap"``, ``"delete"``. nlpaug's default, and the
        paper's, is ``("substitute",)``.
    char_candidates : str
        Characters that substitutions and insertions draw from (nlpaug's:
        ASCII letters, digits and ``!@#$%^&*()_+``).
    typo_word_p, typo_word_min, typo_word_max : float, int, int
        Words given keyboard typos (``KeyboardAug``: 0.3, 1, 10).
    typo_p, typo_min, typo_max : float, int, int
        Characters replaced by a keyboard neighbour in each such word
        (0.3, 1, 10).
    typo_min_chars : int
        Shortest word given keyboard typos (``min_char=4``).

    Raises
    ------
    ValueError
        If a probability is outside [0, 1], a count is not a non-negative
        integer, a minimum exceeds its maximum, or an action is unknown; the
        message names the field.
    """

    split_word_p: float = 0.3
    split_word_min: int = 1
    split_word_max: int = 10
    split_min_chars: int = 4

    char_word_p: float = 0.3
    char_word_min: int = 1
    char_word_max: int = 10
    char_p: float = 0.3
    char_min: int = 1
    char_max: int = 10
    char_min_chars: int = 4
    char_actions: tuple[str, ...] = ("substitute",)
    char_candidates: str = _DEFAULT_CANDIDATES

    typo_word_p: float = 0.3
    typo_word_min: int = 1
    typo_word_max: int = 10
    typo_p: float = 0.3
    typo_min: int = 1
    typo_max: int = 10
    typo_min_chars: int = 4

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            name, value = field.name, getattr(self, field.name)
            if name.endswith("_p"):
                object.__setattr__(self, name, _probability(name, value))
            elif name.endswith(("_min", "_max", "_min_chars")):
                object.__setattr__(self, name, _count(name, value))

        for prefix in ("split_word", "char_word", "char", "typo_word", "typo"):
            low, high = getattr(self, f"{prefix}_min"), getattr(self, f"{prefix}_max")
            if low > high:
                raise ValueError(
                    f"{prefix}_min must not exceed {prefix}_max, got {low} > {high}"
                )
        if self.split_min_chars < 2:
            raise ValueError(
                f"split_min_chars must be at least 2, got {self.split_min_chars}"
            )

        # A YAML list arrives as a list, a lone name as a str: store a tuple.
        actions = self.char_actions
        if isinstance(actions, (list, tuple)):
            object.__setattr__(self, "char_actions", tuple(actions))
        else:
            object.__setattr__(self, "char_actions", (actions,))
        if not self.char_actions or any(
            action not in CHAR_ACTIONS for action in self.char_actions
        ):
            raise ValueError(
                f"char_actions must be a non-empty subset of {CHAR_ACTIONS}, "
                f"got {actions!r}"
            )
        if (
            not isinstance(self.char_candidates, str)
            or len(set(self.char_candidates)) < 2
        ):
            raise ValueError(
                "char_candidates must be a string of at least 2 distinct characters, "
                f"got {self.char_candidates!r}"
            )

    @classmethod
    def from_dict(
        cls, mapping: Mapping[str, Any] | None = None, /, **kwargs: Any
    ) -> AugmentConfig:
        """Build a config from a mapping (a config file's section) or keywords.

        Keys not given keep their defaults.

        Raises
        ------
        ValueError
            If a key is not a field of `AugmentConfig` (the message names it),
            or a value is invalid.
        """
        values = {**(mapping or {}), **kwargs}
        names = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ValueError(
                f"unknown augmentation setting(s) {', '.join(map(repr, unknown))}; "
                f"known: {', '.join(sorted(names))}"
            )
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        """The settings as plain builtins (for YAML, JSON and Snakemake params)."""
        values = dataclasses.asdict(self)
        values["char_actions"] = list(self.char_actions)
        return values


def _probability(name: str, value: object) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Real)
        or not 0 <= value <= 1
    ):
        raise ValueError(f"{name} must be a probability in [0, 1], got {value!r}")
    return float(value)


def _count(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
    return int(value)


def augment_text(text: str, rng: np.random.Generator, config: AugmentConfig) -> str:
    """Return one augmented view of `text`: word splits, character edits, typos.

    The three augmenters run in this order, each on the previous one's
    output (so the halves of a split word are separate words for the
    character augmenters), as nlpaug's ``Sequential`` flow does.

    Parameters
    ----------
    text : str
        The prompt.
    rng : numpy.random.Generator
        The source of every random draw; the same generator state gives the
        same view.
    config : AugmentConfig
        Probabilities and counts of each augmenter.

    Returns
    -------
    str
        The view. Texts without a word long enough to edit (empty, only
        short words, only punctuation) come back unchanged.
    """
    draws = _Draws(rng)

    text = _augment_words(
        text,
        draws,
        (config.split_word_p, config.split_word_min, config.split_word_max),
        lambda word: len(word) >= config.split_min_chars,
        lambda word: _split_word(word, draws),
    )

    text = _augment_words(
        text,
        draws,
        (config.char_word_p, config.char_word_min, config.char_word_max),
        lambda word: len(word) >= config.char_min_chars and _has(word, _is_editable),
        lambda word: _edit_chars(word, draws, config),
    )

    text = _augment_words(
        text,
        draws,
        (config.typo_word_p, config.typo_word_min, config.typo_word_max),
        lambda word: len(word) >= config.typo_min_chars and _has(word, _on_keyboard),
        lambda word: _typo(word, draws, config),
    )
    return text


def make_views(
    texts: Sequence[str],
    n_views: int,
    seed: int = 0,
    config: AugmentConfig | None = None,
) -> list[list[str]]:
    """Make `n_views` augmented views of each text, reproducibly.

    View ``v`` of a text is drawn from a generator seeded by the text's
    content, `seed` and ``v`` only (see Notes), so it is the same whichever
    other texts are in `texts`, in whatever order, and for any `n_views`
    larger than ``v``: the 2 views of InfoNCE are the first 2 of LiDAR's 16.

    Parameters
    ----------
    texts : sequence of str
        The prompts, ``(n_texts,)``.
    n_views : int
        Views per prompt, at least 1.
    seed : int, default 0
        Seed of the whole set of views, in ``[0, 2**64)``.
    config : AugmentConfig, optional
        Augmenter settings; the paper's defaults if omitted.

    Returns
    -------
    list of list of str
        ``views[i][v]`` is view ``v`` of ``texts[i]``; shape
        ``(n_texts, n_views)``.

    Raises
    ------
    TypeError
        If `texts` is a single string or holds something other than strings.
    ValueError
        If `n_views` or `seed` is out of range.

    Notes
    -----
    The generator of view ``v`` of a text is ``numpy.random.default_rng``
    (PCG64) seeded with the SHA-256 digest, read as an integer, of ``seed``
    and ``v`` as 8-byte little-endian integers followed by the text in UTF-8.
    Python's ``hash()`` is not used: it is salted per process. Equal texts
    therefore get equal views; the views are stable across processes and
    machines for a given NumPy version.
    """
    if isinstance(texts, str):
        raise TypeError("texts must be a sequence of strings, got a single string")
    if isinstance(n_views, bool) or not isinstance(n_views, int) or n_views < 1:
        raise ValueError(f"n_views must be a positive integer, got {n_views!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**64:
        raise ValueError(f"seed must be an integer in [0, 2**64), got {seed!r}")
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"texts[{i}] must be a str, got {type(text).__name__}")
    config = AugmentConfig() if config is None else config

    start = time.perf_counter()
    views = [
        [augment_text(text, _view_rng(text, seed, v), config) for v in range(n_views)]
        for text in texts
    ]
    logger.info(
        "made %d views of %d texts in %.1f s",
        n_views,
        len(texts),
        time.perf_counter() - start,
    )
    return views


def _view_rng(text: str, seed: int, view: int) -> np.random.Generator:
    """The generator of view `view` of `text` under `seed` (see `make_views`)."""
    digest = hashlib.sha256()
    digest.update(seed.to_bytes(8, "little"))
    digest.update(view.to_bytes(8, "little"))
    digest.update(text.encode("utf-8", "surrogatepass"))
    return np.random.default_rng(int.from_bytes(digest.digest(), "little"))


class _Draws:
    """Uniform draws from a Generator, fetched in blocks.

    A call into NumPy costs microseconds and a view needs dozens of small
    draws, so uniforms in [0, 1) are fetched 64 at a time and used in order;
    the view is still a function of the generator's state alone.
    """

    def __init__(self, rng: np.random.Generator, block: int = 64) -> None:
        self._rng = rng
        self._block = block
        self._values: list[float] = []
        self._next = 0

    def below(self, n: int) -> int:
        """A uniform integer in ``[0, n)``."""
        if self._next == len(self._values):
            self._values = self._rng.random(self._block).tolist()
            self._next = 0
        u = self._values[self._next]
        self._next += 1
        # u <= 1 - 2**-53, and u * n then rounds below n for any n < 2**53.
        return int(u * n)

    def pick(self, options: Sequence[Any]) -> Any:
        """A uniform choice among `options`."""
        return options[self.below(len(options))]

    def sample(self, population: Sequence[Any], k: int) -> list[Any]:
        """`k` distinct items of `population`, drawn without replacement."""
        pool = list(population)
        for i in range(k):
            j = i + self.below(len(pool) - i)
            pool[i], pool[j] = pool[j], pool[i]
        return pool[:k]


def _n_edits(p: float, size: int, low: int, high: int, available: int) -> int:
    """How many of `size` items to edit: nlpaug's ``ceil(p * size)`` rule.

    The count is clamped to ``[low, high]`` and to the `available` items;
    ``p == 0`` means none (nlpaug would still edit `low`).
    """
    if p == 0 or size == 0 or available == 0:
        return 0
    return min(max(math.ceil(p * size), low), high, available)


def _augment_words(
    text: str,
    draws: _Draws,
    counts: tuple[float, int, int],
    eligible: Callable[[str], bool],
    edit: Callable[[str], str],
) -> str:
    """Apply `edit` to a random choice of the `eligible` words of `text`."""
    p, low, high = counts
    words = [match for match in _WORD.finditer(text) if eligible(match.group())]
    k = _n_edits(p, len(_TOKEN.findall(text)), low, high, len(words))
    if k == 0:
        return text

    pieces, end = [], 0
    for match in sorted(draws.sample(words, k), key=lambda m: m.start()):
        pieces += [text[end : match.start()], edit(match.group())]
        end = match.end()
    pieces.append(text[end:])
    return "".join(pieces)


def _split_word(word: str, draws: _Draws) -> str:
    # Both halves non-empty; nlpaug cuts at 1..len-2, never leaving a 1-char tail.
    cut = 1 + draws.below(len(word) - 1)
    return word[:cut] + " " + word[cut:]


def _edit_chars(word: str, draws: _Draws, config: AugmentConfig) -> str:
    """Insert, substitute, swap or delete some of `word`'s ASCII letters/digits."""
    action = draws.pick(config.char_actions)
    editable = [i for i, c in enumerate(word) if _is_editable(c)]
    # Deletions leave at least one character of the word.
    available = min(len(editable), len(word) - 1 if action == "delete" else len(word))
    k = _n_edits(config.char_p, len(word), config.char_min, config.char_max, available)
    positions = draws.sample(editable, k)
    chars = list(word)

    if action == "substitute":
        for i in positions:
            chars[i] = draws.pick(config.char_candidates.replace(chars[i], ""))
    elif action == "insert":
        # From the right, so that the positions still to come stay valid.
        for i in sorted(positions, reverse=True):
            chars.insert(i, draws.pick(config.char_candidates))
    elif action == "delete":
        for i in sorted(positions, reverse=True):
            del chars[i]
    else:
        for i in positions:
            _swap_with_neighbour(chars, i, draws)
    return "".join(chars)


def _swap_with_neighbour(chars: list[str], i: int, draws: _Draws) -> None:
    """Swap ``chars[i]`` with an editable neighbour; case stays with the position.

    As in nlpaug, "Hello" with its first two letters swapped is "Ehllo".
    """
    sides = [
        j for j in (i - 1, i + 1) if 0 <= j < len(chars) and _is_editable(chars[j])
    ]
    if not sides:
        return
    j = draws.pick(sides)
    a, b = chars[i], chars[j]
    chars[i] = b.upper() if a.isupper() else b.lower()
    chars[j] = a.upper() if b.isupper() else a.lower()


def _typo(word: str, draws: _Draws, config: AugmentConfig) -> str:
    """Replace some of `word`'s letters and digits by a QWERTY neighbour."""
    keys = [i for i, c in enumerate(word) if _on_keyboard(c)]
    k = _n_edits(config.typo_p, len(word), config.typo_min, config.typo_max, len(keys))
    chars = list(word)
    for i in draws.sample(keys, k):
        typo = draws.pick(QWERTY_NEIGHBOURS[chars[i].lower()])
        chars[i] = typo.upper() if chars[i].isupper() else typo
    return "".join(chars)


def _is_editable(char: str) -> bool:
    return char.isascii() and char.isalnum()


def _on_keyboard(char: str) -> bool:
    return char.isascii() and char.lower() in QWERTY_NEIGHBOURS


def _has(word: str, predicate: Callable[[str], bool]) -> bool:
    return any(predicate(c) for c in word)
