"""Tables over small synthetic frames, checked value by value (docs/figures.md)."""

import math

import numpy as np
import pandas as pd
import pytest

from layerscope import tables


def _probing(curves: dict[tuple[str, str], list[float]]) -> pd.DataFrame:
    """Probing rows from {(model, task): main score per layer}."""
    rows = []
    for (model, task), scores in curves.items():
        last = len(scores) - 1
        for layer, score in enumerate(scores):
            rows.append(
                {
                    "model": model,
                    "task": task,
                    "layer": layer,
                    "depth": layer / max(last, 1),
                    "main_score": score,
                    "score.accuracy": score,
                }
            )
    return pd.DataFrame(rows)


def _metrics(curves: dict[tuple[str, str, str, str], list[float]]) -> pd.DataFrame:
    """Metric rows from {(model, source, metric, variant): value per layer}."""
    rows = []
    for (model, source, metric, variant), values in curves.items():
        last = len(values) - 1
        for layer, value in enumerate(values):
            rows.append(
                {
                    "model": model,
                    "source": source,
                    "metric": metric,
                    "variant": variant,
                    "layer": layer,
                    "depth": layer / last,
                    "value": value,
                    "n": 10,
                    "per_prompt": None,
                }
            )
    return pd.DataFrame(rows)


def _row(table: pd.DataFrame, **where) -> pd.Series:
    mask = np.logical_and.reduce([table[key] == value for key, value in where.items()])
    assert mask.sum() == 1, f"{mask.sum()} rows match {where}"
    return table[mask].iloc[0]


# ---------------------------------------------------------------- reading


def test_reading_concatenates_files_and_keeps_per_prompt_lists(tmp_path):
    frame = _metrics({("m", "wiki", "prompt_entropy", "raw"): [1.0, 2.0]})
    frame["per_prompt"] = [[1.0, np.nan], [2.0, 2.0]]
    other = _metrics({("m", "wiki", "lidar", "raw"): [3.0, 4.0]})
    frame.to_parquet(tmp_path / "a.parquet")
    other.to_parquet(tmp_path / "b.parquet")

    read = tables.read_metrics([tmp_path / "a.parquet", str(tmp_path / "b.parquet")])

    assert read["metric"].tolist() == ["prompt_entropy"] * 2 + ["lidar"] * 2
    assert list(read["per_prompt"].iloc[0]) == pytest.approx([1.0, np.nan], nan_ok=True)
    assert read["per_prompt"].iloc[2] is None


@pytest.mark.parametrize("read", [tables.read_metrics, tables.read_probing])
def test_a_missing_input_file_is_named_in_the_error(read, tmp_path):
    missing = tmp_path / "results" / "not-there.parquet"

    with pytest.raises(FileNotFoundError, match="not-there.parquet"):
        read([missing])


@pytest.mark.parametrize("read", [tables.read_metrics, tables.read_probing])
def test_an_empty_input_file_is_named_in_the_error(read, tmp_path):
    (tmp_path / "zero.parquet").touch()
    _probing({("m", "t"): [0.1]}).iloc[:0].to_parquet(tmp_path / "no-rows.parquet")

    with pytest.raises(ValueError, match="zero.parquet"):
        read([tmp_path / "zero.parquet"])
    with pytest.raises(ValueError, match="no-rows.parquet"):
        read([tmp_path / "no-rows.parquet"])


def test_a_file_read_twice_is_rejected(tmp_path):
    _probing({("m", "t"): [0.1, 0.2]}).to_parquet(tmp_path / "t.parquet")

    with pytest.raises(ValueError, match="share"):
        tables.read_probing([tmp_path / "t.parquet", tmp_path / "t.parquet"])


# ---------------------------------------------------------------- metric tables


def test_metrics_table_drops_the_per_prompt_column():
    frame = _metrics({("m", "wiki", "curvature", "radians"): [1.0, 2.0, 3.0]})

    table = tables.metrics_table(frame)

    assert "per_prompt" not in table.columns
    assert table["value"].tolist() == [1.0, 2.0, 3.0]


def test_per_prompt_table_has_one_row_per_layer_and_prompt():
    frame = pd.concat(
        [
            _metrics({("m", "wiki", "curvature", "radians"): [1.5, 0.5]}),
            _metrics({("m", "wiki", "lidar", "raw"): [7.0, 8.0]}),
        ],
        ignore_index=True,
    )
    frame.at[0, "per_prompt"] = [1.0, np.nan, 2.0]
    frame.at[1, "per_prompt"] = np.array([0.25, 0.5, 0.75])

    table = tables.per_prompt_table(frame)

    assert table.columns.tolist() == [
        *["model", "source", "metric", "variant", "layer", "depth"],
        *["prompt", "value"],
    ]
    assert table["metric"].unique().tolist() == ["curvature"]  # lidar has none
    assert table["layer"].tolist() == [0, 0, 0, 1, 1, 1]
    assert table["prompt"].tolist() == [0, 1, 2, 0, 1, 2]
    assert table["depth"].tolist() == [0.0, 0.0, 0.0, 1.0, 1.0, 1.0]
    expected = [1.0, np.nan, 2.0, 0.25, 0.5, 0.75]
    assert table["value"].tolist() == pytest.approx(expected, nan_ok=True)


# ---------------------------------------------------------------- best layers


def test_best_layer_is_the_argmax_and_gain_the_difference_to_the_last():
    probing = _probing({("m", "sts"): [0.2, 0.7, 0.5, 0.4]})

    row = _row(tables.best_layers(probing), model="m", task="sts")

    assert row["best_layer"] == 1
    assert row["best_depth"] == pytest.approx(1 / 3)
    assert row["best_score"] == pytest.approx(0.7)
    assert row["last_layer"] == 3
    assert row["last_score"] == pytest.approx(0.4)
    assert row["gain"] == pytest.approx(0.7 - 0.4)


def test_ties_go_to_the_lowest_layer():
    probing = _probing({("m", "sts"): [0.1, 0.6, 0.3, 0.6, 0.6]})

    row = _row(tables.best_layers(probing), model="m", task="sts")

    assert row["best_layer"] == 1
    assert row["gain"] == 0.0


def test_a_nan_score_is_skipped_when_finding_the_best_layer():
    probing = _probing({("m", "sts"): [0.1, math.nan, 0.3]})

    row = _row(tables.best_layers(probing), model="m", task="sts")

    assert row["best_layer"] == 2


def test_average_row_is_the_mean_over_tasks_per_layer():
    probing = _probing(
        {
            ("m", "a"): [0.1, 0.9, 0.2],  # best alone at layer 1
            ("m", "b"): [0.5, 0.1, 0.6],  # best alone at layer 2
            ("other", "a"): [0.3, 0.4],
        }
    )

    table = tables.best_layers(probing)
    average = _row(table, model="m", task="average")

    # per-layer means: 0.3, 0.5, 0.4
    assert average["n_tasks"] == 2
    assert average["best_layer"] == 1
    assert average["best_score"] == pytest.approx(0.5)
    assert average["last_layer"] == 2
    assert average["last_score"] == pytest.approx(0.4)
    assert average["gain"] == pytest.approx(0.1)
    assert table["task"].tolist() == ["a", "b", "average", "a", "average"]


def test_average_is_nan_at_a_layer_that_lacks_a_task():
    probing = _probing({("m", "a"): [0.1, 0.2, 0.3], ("m", "b"): [0.5, 0.4, 0.6]})
    probing = probing.drop(index=probing.index[(probing.task == "b")][1])

    average = tables.average_scores(probing)

    assert average["main_score"].tolist() == pytest.approx(
        [0.3, math.nan, 0.45], nan_ok=True
    )


def test_a_task_named_average_is_rejected():
    with pytest.raises(ValueError, match="average"):
        tables.best_layers(_probing({("m", "average"): [0.1, 0.2]}))


# ---------------------------------------------------------------- correlations


@pytest.mark.parametrize("sign", [1, -1])
def test_a_monotone_metric_has_spearman_one_and_distance_correlation_one(sign):
    layers = np.arange(6)
    metric = sign * (layers**3 + 1.0)  # monotone, not linear
    probing = _probing({("m", "sts"): list(0.1 + 0.1 * layers)})
    metrics = _metrics({("m", "wiki", "lidar", "raw"): list(metric)})
    metrics_linear = _metrics({("m", "wiki", "dime", "raw"): list(2.0 * layers)})

    table = tables.correlations(pd.concat([metrics, metrics_linear]), probing)
    monotone = _row(table, metric="lidar", task="sts")
    linear = _row(table, metric="dime", task="sts")

    assert monotone["spearman"] == pytest.approx(sign)
    assert monotone["n_layers"] == 6
    assert linear["distance_correlation"] == pytest.approx(1.0)
    assert 0.9 < monotone["distance_correlation"] < 1.0  # dCor sees the bend


def test_correlations_align_metric_and_score_on_layer():
    probing = _probing({("m", "sts"): [0.1, 0.2, 0.3, 0.4]})
    metrics = _metrics({("m", "wiki", "dime", "raw"): [5.0, 6.0, 7.0, 8.0, 100.0]})
    metrics = metrics.sample(frac=1.0, random_state=0)  # rows out of order

    row = _row(tables.correlations(metrics, probing), task="sts")

    assert row["n_layers"] == 4  # layer 4 was not probed
    assert row["spearman"] == pytest.approx(1.0)
    assert row["distance_correlation"] == pytest.approx(1.0)


def test_a_constant_metric_has_nan_spearman_and_zero_distance_correlation():
    probing = _probing({("m", "sts"): [0.1, 0.5, 0.3, 0.2]})
    metrics = _metrics({("m", "wiki", "dime", "raw"): [2.0, 2.0, 2.0, 2.0]})

    row = _row(tables.correlations(metrics, probing), task="sts")

    assert math.isnan(row["spearman"])
    assert row["distance_correlation"] == 0.0


def test_nan_layers_are_left_out_of_a_correlation():
    probing = _probing({("m", "sts"): [0.1, 0.2, math.nan, 0.4, 0.5]})
    metrics = _metrics({("m", "wiki", "dime", "raw"): [1.0, math.nan, 3.0, 4.0, 5.0]})

    row = _row(tables.correlations(metrics, probing), task="sts")

    assert row["n_layers"] == 3
    assert row["spearman"] == pytest.approx(1.0)


def test_correlation_average_row_is_the_mean_over_tasks():
    probing = _probing(
        {
            ("m", "up"): [0.1, 0.2, 0.3, 0.4],
            ("m", "down"): [0.4, 0.3, 0.2, 0.1],
            ("m", "flat"): [0.5, 0.5, 0.5, 0.5],  # NaN Spearman, dCor 0
        }
    )
    metrics = _metrics({("m", "wiki", "lidar", "raw"): [1.0, 2.0, 3.0, 4.0]})

    table = tables.correlations(metrics, probing)
    average = _row(table, task="average")

    assert len(table) == 4
    assert average["spearman"] == pytest.approx(0.0)  # mean of +1 and -1
    assert average["distance_correlation"] == pytest.approx((1 + 1 + 0) / 3)
    assert average["n_tasks"] == 3
    assert average["n_layers"] == 4


# ---------------------------------------------------------------- layer choice


SCORES = {("m", "a"): [0.1, 0.3, 0.5, 0.7, 0.2], ("m", "b"): [0.3, 0.5, 0.3, 0.5, 0.4]}
# average main score per layer: 0.2, 0.4, 0.4, 0.6, 0.3 (best 3, last 4)
AVERAGE = [0.2, 0.4, 0.4, 0.6, 0.3]
CURVE = [5.0, 1.0, 3.0, 2.0, 4.0]  # min at layer 1, max at layer 0


@pytest.mark.parametrize("metric", ["curvature", "infonce", "prompt_entropy"])
def test_layer_choice_takes_the_minimum_of_lower_is_better_metrics(metric):
    metrics = _metrics({("m", "wiki", metric, "raw"): CURVE})

    row = _row(tables.layer_choice(metrics, _probing(SCORES)), metric=metric)

    assert row["direction"] == "min"
    assert row["chosen_layer"] == 1
    assert row["chosen_value"] == 1.0
    assert row["chosen_score"] == pytest.approx(AVERAGE[1])


@pytest.mark.parametrize(
    "metric", ["dataset_entropy", "effective_rank", "lidar", "dime"]
)
def test_layer_choice_takes_the_maximum_of_higher_is_better_metrics(metric):
    metrics = _metrics({("m", "wiki", metric, "raw"): CURVE})

    row = _row(tables.layer_choice(metrics, _probing(SCORES)), metric=metric)

    assert row["direction"] == "max"
    assert row["chosen_layer"] == 0
    assert row["chosen_depth"] == 0.0
    assert row["chosen_score"] == pytest.approx(AVERAGE[0])


def test_layer_choice_reports_best_last_and_regret():
    metrics = _metrics({("m", "wiki", "curvature", "radians"): CURVE})

    row = _row(tables.layer_choice(metrics, _probing(SCORES)), metric="curvature")

    assert row["best_layer"] == 3
    assert row["best_score"] == pytest.approx(0.6)
    assert row["last_layer"] == 4
    assert row["last_score"] == pytest.approx(0.3)
    assert row["regret"] == pytest.approx(0.6 - 0.4)
    assert row["gain_over_last"] == pytest.approx(0.4 - 0.3)


def test_layer_choice_breaks_metric_ties_towards_the_lowest_layer():
    metrics = _metrics({("m", "wiki", "lidar", "raw"): [1.0, 4.0, 2.0, 4.0, 0.0]})

    row = _row(tables.layer_choice(metrics, _probing(SCORES)), metric="lidar")

    assert row["chosen_layer"] == 1


def test_layer_choice_needs_a_direction_for_every_metric():
    metrics = _metrics({("m", "wiki", "new_metric", "raw"): CURVE})

    with pytest.raises(ValueError, match="new_metric"):
        tables.layer_choice(metrics, _probing(SCORES))
    table = tables.layer_choice(metrics, _probing(SCORES), {"new_metric": "max"})
    assert table["chosen_layer"].tolist() == [0]


# ---------------------------------------------------------------- writing


def test_write_csv_replaces_the_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "tables" / "best.csv"
    path.parent.mkdir()
    path.write_text("old\n")
    table = tables.best_layers(_probing(SCORES))

    written = tables.write_csv(table, path)

    assert written == path
    assert sorted(p.name for p in path.parent.iterdir()) == ["best.csv"]
    back = pd.read_csv(path)
    assert back["best_layer"].tolist() == table["best_layer"].tolist()
