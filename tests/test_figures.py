"""Figures from synthetic frames: files written, models shown, colours kept."""

import matplotlib.image
import numpy as np
import pandas as pd
import pytest
from matplotlib.colors import to_hex

from layerscope import figures

BLOCKS = {"minilm": 4, "gpt2": 6, "smollm": 8}  # layers = blocks + 1
TASKS = ["Banking77Classification", "STSBenchmark", "SciFact"]
SOURCES = ["wiki", "kjv"]
VARIANTS = {
    "prompt_entropy": ["raw", "max_entropy"],
    "dataset_entropy": ["raw", "max_entropy"],
    "effective_rank": ["raw"],
    "curvature": ["radians"],
    "infonce": ["raw"],
    "lidar": ["raw"],
    "dime": ["raw"],
}
N_PROMPTS = 60
BIMODAL_LAYER = 4  # of smollm


def _probing(blocks: dict[str, int]) -> pd.DataFrame:
    rows = []
    for i, (model, last) in enumerate(blocks.items()):
        for j, task in enumerate(TASKS):
            for layer in range(last + 1):
                depth = layer / last
                score = 0.3 + 0.1 * j + 0.2 * np.exp(-((depth - 0.6) ** 2) / 0.05)
                rows.append(
                    {
                        "model": model,
                        "task": task,
                        "layer": layer,
                        "depth": depth,
                        "main_score": score - 0.02 * i,
                    }
                )
    return pd.DataFrame(rows)


def _per_prompt(model: str, layer: int, depth: float, rng) -> np.ndarray:
    values = rng.normal(0.8 - 0.4 * np.sin(np.pi * depth), 0.03, N_PROMPTS)
    if model == "smollm" and layer == BIMODAL_LAYER:
        values[: N_PROMPTS // 2] = rng.normal(0.1, 0.01, N_PROMPTS // 2)
    return values


def _metrics(blocks: dict[str, int]) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    for model, last in blocks.items():
        for source in SOURCES:
            for metric, variants in VARIANTS.items():
                for variant in variants:
                    for layer in range(last + 1):
                        depth = layer / last
                        per_prompt = None
                        if metric in ("prompt_entropy", "curvature"):
                            per_prompt = _per_prompt(model, layer, depth, rng)
                        value = (
                            np.sin(np.pi * depth)
                            if per_prompt is None
                            else per_prompt.mean()
                        )
                        rows.append(
                            {
                                "model": model,
                                "source": source,
                                "metric": metric,
                                "variant": variant,
                                "layer": layer,
                                "depth": depth,
                                "value": value,
                                "n": N_PROMPTS,
                                "per_prompt": per_prompt,
                            }
                        )
    return pd.DataFrame(rows)


def _correlations(blocks: dict[str, int]) -> pd.DataFrame:
    """The frame tables.correlations returns, with made-up numbers."""
    rng = np.random.default_rng(1)
    rows = []
    for model in blocks:
        for source in SOURCES:
            for metric, variants in VARIANTS.items():
                for variant in variants:
                    for task in [*TASKS, "average"]:
                        rows.append(
                            {
                                "model": model,
                                "source": source,
                                "metric": metric,
                                "variant": variant,
                                "task": task,
                                "n_tasks": 3 if task == "average" else 1,
                                "n_layers": blocks[model] + 1,
                                "distance_correlation": rng.uniform(0, 1),
                                "spearman": rng.uniform(-1, 1),
                            }
                        )
    return pd.DataFrame(rows)


def _draw_all(blocks: dict[str, int], out) -> dict[str, figures.FigureFiles]:
    models = list(blocks)
    metrics, probing = _metrics(blocks), _probing(blocks)
    correlations = _correlations(blocks)
    return {
        "metrics_vs_depth": figures.plot_metrics_vs_depth(
            metrics, out / "metrics_vs_depth", models, "wiki"
        ),
        "score_vs_depth": figures.plot_score_vs_depth(
            probing, out / "score_vs_depth", models
        ),
        "best_vs_last": figures.plot_best_vs_last(
            probing, out / "best_vs_last", models
        ),
        "correlations": figures.plot_correlations(
            correlations, out / "correlations", models
        ),
        "task_heatmap": figures.plot_task_heatmap(
            probing, out / "task_heatmap", "smollm"
        ),
        "prompt_entropy_hist": figures.plot_prompt_entropy_hist(
            metrics, out / "prompt_entropy_hist", "smollm", "wiki"
        ),
    }


MULTI_MODEL = ["metrics_vs_depth", "score_vs_depth", "best_vs_last", "correlations"]


def _draw_multi_model(blocks: dict[str, int], out) -> dict[str, figures.FigureFiles]:
    """The multi-model figures, on two metrics of one source (to save time)."""
    models = list(blocks)

    def two_metrics(frame):
        keep = frame["metric"].isin(["prompt_entropy", "lidar"])
        return frame[keep & (frame["source"] == "wiki")]

    metrics = two_metrics(_metrics(blocks))
    correlations = two_metrics(_correlations(blocks))
    probing = _probing(blocks)
    return {
        "metrics_vs_depth": figures.plot_metrics_vs_depth(
            metrics, out / "metrics_vs_depth", models, "wiki"
        ),
        "score_vs_depth": figures.plot_score_vs_depth(
            probing,
            out / "score_vs_depth.png",
            models,  # a suffix is allowed
        ),
        "best_vs_last": figures.plot_best_vs_last(
            probing, out / "best_vs_last", models
        ),
        "correlations": figures.plot_correlations(
            correlations, out / "correlations", models
        ),
    }


@pytest.fixture(scope="module")
def drawn(tmp_path_factory):
    """Every figure for three models; the multi-model ones with a fourth added."""
    more = {**BLOCKS, "pythia": 12}
    return {
        "three": _draw_all(BLOCKS, tmp_path_factory.mktemp("three")),
        "four": _draw_multi_model(more, tmp_path_factory.mktemp("four")),
    }


def _model_colors(figure) -> dict[str, str]:
    """Label -> colour of every legend entry and x tick label of ``figure``."""
    shown = {}
    legends = [*figure.legends, *(ax.get_legend() for ax in figure.axes)]
    for legend in filter(None, legends):
        for text, handle in zip(legend.get_texts(), legend.legend_handles):
            shown[text.get_text()] = to_hex(handle.get_color())
    for ax in figure.axes:
        for label in ax.get_xticklabels():
            shown.setdefault(label.get_text(), to_hex(label.get_color()))
    return shown


@pytest.mark.parametrize(
    "name",
    [
        "metrics_vs_depth",
        "score_vs_depth",
        "best_vs_last",
        "correlations",
        "task_heatmap",
        "prompt_entropy_hist",
    ],
)
def test_each_figure_writes_a_readable_png_and_a_pdf(drawn, name):
    files = drawn["three"][name]

    png, pdf = files
    assert png.suffix == ".png" and pdf.suffix == ".pdf"
    assert png.name == f"{name}.png"
    assert pdf.read_bytes().startswith(b"%PDF") and pdf.stat().st_size > 1000
    height, width, _ = matplotlib.image.imread(png).shape
    assert 400 <= width <= 2400 and 300 <= height <= 2400


@pytest.mark.parametrize("name", MULTI_MODEL)
def test_an_added_model_appears_in_every_multi_model_figure(drawn, name):
    before = _model_colors(drawn["three"][name].figure)
    after = _model_colors(drawn["four"][name].figure)

    assert set(BLOCKS) <= set(before) and "pythia" not in before
    assert {*BLOCKS, "pythia"} <= set(after)


@pytest.mark.parametrize("name", MULTI_MODEL)
def test_a_models_colour_stays_when_another_model_is_added(drawn, name):
    before = _model_colors(drawn["three"][name].figure)
    after = _model_colors(drawn["four"][name].figure)

    assert {model: after[model] for model in BLOCKS} == {
        model: before[model] for model in BLOCKS
    }
    assert len({after[model] for model in [*BLOCKS, "pythia"]}) == 4


def test_lines_take_their_models_colour(drawn):
    figure = drawn["four"]["metrics_vs_depth"].figure
    expected = {
        m: to_hex(c) for m, c in figures.model_colors([*BLOCKS, "pythia"]).items()
    }

    lines = [line for ax in figure.axes for line in ax.get_lines()]

    assert len(lines) == 2 * 4  # a line per metric and model
    assert all(to_hex(line.get_color()) == expected[line.get_label()] for line in lines)


def test_model_colours_depend_only_on_position():
    three = figures.model_colors(["a", "b", "c"])
    four = figures.model_colors(["a", "b", "c", "d"])

    assert {model: four[model] for model in three} == three
    assert len(set(four.values())) == 4


def test_a_bimodal_layer_shows_two_separate_peaks(drawn):
    figure = drawn["three"]["prompt_entropy_hist"].figure
    density = np.asarray(figure.axes[0].images[0].get_array())  # (bin, layer)

    def peaks(column):
        """Runs of occupied bins that hold at least a fifth of the prompts."""
        runs = np.split(column, np.flatnonzero(column == 0))
        return sum(run.sum() >= 0.2 for run in runs)

    assert peaks(density[:, BIMODAL_LAYER]) == 2
    assert peaks(density[:, 0]) == 1
    assert np.allclose(np.nansum(density, axis=0), 1.0)  # a histogram per layer


def test_figures_leave_no_pyplot_state(drawn):
    import matplotlib.pyplot as plt

    assert plt.get_fignums() == []


def test_an_out_path_with_a_suffix_writes_png_and_pdf_beside_it(drawn):
    files = drawn["four"]["score_vs_depth"]  # drawn to score_vs_depth.png

    assert [path.name for path in files] == ["score_vs_depth.png", "score_vs_depth.pdf"]


def test_models_without_rows_are_an_error_naming_them(tmp_path):
    with pytest.raises(ValueError, match="nobody"):
        figures.plot_score_vs_depth(_probing(BLOCKS), tmp_path / "s", ["nobody"])
