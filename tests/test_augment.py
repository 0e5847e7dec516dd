"""Tests of layerscope.augment: seeded word splits, character edits and typos."""

import math
import os
import subprocess
import sys

import numpy as np
import pytest

from layerscope.augment import (
    QWERTY_NEIGHBOURS,
    AugmentConfig,
    augment_text,
    make_views,
)

SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "Language models build their representations layer by layer.",
    "Intermediate layers often give better embeddings than the final one.",
    "She sells seashells by the seashore, every single summer morning.",
    "Researchers measured entropy, curvature and invariance at every depth.",
]

OFF = {"split_word_p": 0.0, "char_word_p": 0.0, "typo_word_p": 0.0}


def only(**settings):
    """A config with every augmenter off except the settings given."""
    return AugmentConfig.from_dict({**OFF, **settings})


def views_of(text, config, n_views=20, seed=0):
    return make_views([text], n_views, seed=seed, config=config)[0]


# Determinism and shape


def test_same_seed_gives_identical_views():
    assert make_views(SENTENCES, 4, seed=7) == make_views(SENTENCES, 4, seed=7)


def test_different_seeds_give_different_views():
    assert make_views(SENTENCES, 4, seed=7) != make_views(SENTENCES, 4, seed=8)


def test_views_are_texts_by_views_plain_strings():
    views = make_views(SENTENCES, 3)

    assert len(views) == len(SENTENCES)
    assert all(len(row) == 3 for row in views)
    assert all(type(view) is str for row in views for view in row)
    assert not any(view.startswith("['") for row in views for view in row)


def test_views_of_a_text_do_not_depend_on_the_other_texts_or_their_order():
    batch = make_views(SENTENCES, 4, seed=3)
    reversed_batch = make_views(SENTENCES[::-1], 4, seed=3)

    for i, text in enumerate(SENTENCES):
        assert make_views([text], 4, seed=3)[0] == batch[i]
        assert reversed_batch[len(SENTENCES) - 1 - i] == batch[i]


def test_first_views_do_not_depend_on_how_many_views_are_made():
    two = make_views(SENTENCES, 2, seed=5)
    sixteen = make_views(SENTENCES, 16, seed=5)

    assert [row[:2] for row in sixteen] == two


def test_views_of_one_text_differ_from_each_other():
    views = views_of(SENTENCES[0], AugmentConfig(), n_views=16)

    assert len(set(views)) == 16


def test_equal_texts_get_equal_views():
    views = make_views([SENTENCES[0], SENTENCES[1], SENTENCES[0]], 3)

    assert views[0] == views[2]


def test_views_are_identical_in_another_process_with_another_hash_seed():
    script = (
        "from layerscope.augment import make_views;"
        f"print(repr(make_views({SENTENCES!r}, 3, seed=11)))"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}

    outputs = {
        subprocess.run(
            [sys.executable, "-c", script],
            env={**env, "PYTHONHASHSEED": hash_seed},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for hash_seed in ("1", "2")
    }

    assert outputs == {repr(make_views(SENTENCES, 3, seed=11)) + "\n"}


def test_a_pinned_view_is_unchanged():
    # Views feed cached activations: change this value only on purpose, as
    # every view made before the change then differs from the new ones.
    view = make_views(["The quick brown fox jumps over the lazy dog."], 1, seed=0)

    assert view == [["The q ujZn hrq2n fox jum ps sbwj the laz y dog."]]


def test_augment_text_is_a_function_of_the_generator_state():
    config = AugmentConfig()

    first = augment_text(SENTENCES[1], np.random.default_rng(42), config)
    second = augment_text(SENTENCES[1], np.random.default_rng(42), config)

    assert first == second


# The recipe


def test_default_views_differ_from_typical_sentences():
    views = make_views(SENTENCES, 16)

    assert all(view != text for text, row in zip(SENTENCES, views) for view in row)


def test_default_views_change_characters_but_not_the_length_besides_splits():
    for text, row in zip(SENTENCES, make_views(SENTENCES, 16)):
        for view in row:
            # Substitutions and typos keep the length; splits add spaces.
            assert len(view.replace(" ", "")) == len(text.replace(" ", ""))
            assert 1 <= view.count(" ") - text.count(" ") <= 10


def test_zero_probabilities_return_the_original_text():
    views = make_views(SENTENCES, 4, config=only())

    assert views == [[text] * 4 for text in SENTENCES]


def test_zero_character_probabilities_return_the_original_text():
    config = only(char_word_p=1.0, char_p=0.0, typo_word_p=1.0, typo_p=0.0)

    assert views_of(SENTENCES[2], config) == [SENTENCES[2]] * 20


def test_word_split_adds_one_space_inside_each_long_word():
    text = "Splitting every long word is what this augmenter does"

    for view in views_of(text, only(split_word_p=1.0)):
        pieces = iter(view.split(" "))
        for word in text.split(" "):
            # Words of 4+ characters come back as two pieces, others whole.
            glued = next(pieces) + (next(pieces) if len(word) >= 4 else "")
            assert glued == word
        assert next(pieces, None) is None


def test_word_split_cuts_a_word_into_two_non_empty_halves():
    for view in views_of("abcdef", only(split_word_p=1.0), n_views=50):
        left, right = view.split(" ")
        assert left + right == "abcdef"
        assert left and right


def test_keyboard_typo_replaces_characters_by_qwerty_neighbours():
    text = "Typing quickly produces mistakes, 2024."
    config = only(typo_word_p=1.0, typo_p=1.0)

    for view in views_of(text, config):
        assert len(view) == len(text)
        for old, new in zip(text, view):
            if old.isalnum():
                assert new.lower() in QWERTY_NEIGHBOURS[old.lower()]
            else:
                assert new == old


def test_keyboard_typo_preserves_case():
    for view in views_of("QWERTY keyboard", only(typo_word_p=1.0, typo_p=1.0)):
        assert all(c.isupper() or c.isdigit() for c in view[:6])
        assert all(c.islower() or c.isdigit() for c in view[7:])


def test_keyboard_table_is_symmetric_and_covers_letters_and_digits():
    assert set(QWERTY_NEIGHBOURS) == set("abcdefghijklmnopqrstuvwxyz0123456789")
    assert all(
        key in QWERTY_NEIGHBOURS[n]
        for key in QWERTY_NEIGHBOURS
        for n in QWERTY_NEIGHBOURS[key]
    )
    assert set(QWERTY_NEIGHBOURS["s"]) == set("weadzx")
    assert set(QWERTY_NEIGHBOURS["g"]) == set("tyfhvb")


def test_char_substitute_replaces_characters_in_place():
    text = "Substitution keeps every word the same length."
    config = only(char_word_p=1.0, char_min=1, char_max=1)

    for view in views_of(text, config):
        assert len(view) == len(text)
        changed = [(old, new) for old, new in zip(text, view) if old != new]
        long_words = sum(len(w.strip(".")) >= 4 for w in text.split())
        assert len(changed) == long_words
        assert all(new in config.char_candidates for _, new in changed)


def test_char_insert_adds_characters_to_words():
    config = only(char_word_p=1.0, char_actions=["insert"], char_min=2, char_max=2)

    for view in views_of("augment", config):
        assert len(view) == len("augment") + 2
        remaining = iter(view)
        assert all(c in remaining for c in "augment")


def test_char_delete_removes_characters_but_never_a_whole_word():
    config = only(char_word_p=1.0, char_actions=["delete"], char_p=1.0)

    for view in views_of("word", config):
        assert len(view) == 1
        assert view in "word"


def test_char_swap_exchanges_neighbours_and_keeps_case_in_place():
    config = only(char_word_p=1.0, char_actions=["swap"], char_min=1, char_max=1)

    for view in views_of("Hello", config):
        assert sorted(view.lower()) == sorted("hello")
        assert view[0].isupper() and view[1:].islower()
        assert sum(a != b for a, b in zip(view.lower(), "hello")) in (0, 2)


def test_counts_follow_nlpaugs_ceil_rule_and_caps():
    # 20 tokens at 0.3: ceil(6.0) = 6 words split.
    text = " ".join(["word"] * 20)
    view = views_of(text, only(split_word_p=0.3), n_views=1)[0]
    assert view.count(" ") - text.count(" ") == math.ceil(0.3 * 20)

    # 1,000 tokens at 0.3 would be 300: split_word_max caps it at 10.
    text = " ".join(["word"] * 1000)
    view = views_of(text, only(split_word_p=0.3), n_views=1)[0]
    assert view.count(" ") - text.count(" ") == 10


# Edge cases


@pytest.mark.parametrize("text", ["", "   ", "I am a cat", "!!! ?? ...", "a b c"])
def test_texts_without_an_editable_word_come_back_unchanged(text):
    assert make_views([text], 4) == [[text] * 4]


def test_non_ascii_characters_are_left_untouched():
    text = "Über naïve façades, the café served crème brûlée in Zürich 東京都庁舎"
    config = AugmentConfig(
        split_word_p=0.0,
        char_word_p=1.0,
        char_actions=("insert", "substitute", "swap", "delete"),
        typo_word_p=1.0,
    )

    for view in views_of(text, config, n_views=50):
        assert [c for c in view if not c.isascii()] == [
            c for c in text if not c.isascii()
        ]


def test_punctuation_and_whitespace_between_words_are_kept():
    text = "Hello,  world!\n\tIt's (really) a test; isn't it?"

    for view in views_of(text, only(typo_word_p=1.0, char_word_p=1.0)):
        assert len(view) == len(text)
        assert [c for c in view if c in " \n\t"] == [c for c in text if c in " \n\t"]
        assert [i for i, c in enumerate(view) if c.isspace()] == [
            i for i, c in enumerate(text) if c.isspace()
        ]


def test_a_very_long_text_gets_a_capped_number_of_edits():
    text = " ".join(SENTENCES * 400)  # about 4,000 words

    view = make_views([text], 1)[0][0]

    assert view.count(" ") - text.count(" ") == 10
    # At most 10 words of at most 10 edits, for each character augmenter.
    changed = sum(a != b for a, b in zip(view.replace(" ", ""), text.replace(" ", "")))
    assert 0 < changed <= 200


# Configuration


def test_defaults_are_nlpaugs_for_split_random_char_and_keyboard():
    config = AugmentConfig()

    for prefix in ("split_word", "char_word", "char", "typo_word", "typo"):
        assert getattr(config, f"{prefix}_p") == 0.3
        assert getattr(config, f"{prefix}_min") == 1
        assert getattr(config, f"{prefix}_max") == 10
    assert config.split_min_chars == config.char_min_chars == config.typo_min_chars == 4
    assert config.char_actions == ("substitute",)


def test_from_dict_round_trips_through_to_dict():
    config = AugmentConfig.from_dict(
        {"char_actions": ["swap", "delete"], "typo_p": 0.1}
    )

    assert config.char_actions == ("swap", "delete")
    assert AugmentConfig.from_dict(config.to_dict()) == config


def test_unknown_key_raises_naming_it():
    with pytest.raises(ValueError, match="split_prob"):
        AugmentConfig.from_dict({"split_prob": 0.2})


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("split_word_p", 1.5),
        ("char_p", -0.1),
        ("typo_word_p", float("nan")),
        ("typo_p", "0.3"),
        ("char_word_max", -1),
        ("typo_min", 1.5),
        ("split_min_chars", 1),
        ("char_actions", ["shuffle"]),
        ("char_actions", []),
        ("char_candidates", "x"),
    ],
)
def test_bad_setting_raises_naming_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        AugmentConfig.from_dict({field: value})


def test_minimum_above_maximum_raises_naming_both():
    with pytest.raises(ValueError, match="typo_word_min.*typo_word_max"):
        AugmentConfig(typo_word_min=5, typo_word_max=2)


def test_make_views_rejects_a_single_string():
    with pytest.raises(TypeError, match="single string"):
        make_views("one text", 2)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [({"n_views": 0}, "n_views"), ({"n_views": 2, "seed": -1}, "seed")],
)
def test_make_views_rejects_bad_counts_and_seeds(kwargs, name):
    with pytest.raises(ValueError, match=name):
        make_views(SENTENCES, **kwargs)
