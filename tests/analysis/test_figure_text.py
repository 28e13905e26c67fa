"""Figures keep their words readable: no title outside the image, long names shortened with a
visible "…", neighbour labels whole and of a readable size, axes that hold their data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import alexnet.analysis.plots as plots
from alexnet.cli import main

DRAWN: list = []


def texts(fig) -> list:
    """Every visible piece of text: figure titles, axes titles, labels and visible ticks."""
    found = list(fig.texts)
    for ax in fig.axes:
        found += [ax.title, ax._left_title, ax._right_title]
        if ax.axison:
            found += [ax.xaxis.label, ax.yaxis.label, *ax.get_xticklabels(),
                      *ax.get_yticklabels()]
    return [t for t in found if t.get_visible() and t.get_text()]


@pytest.fixture(autouse=True)
def inspect_figures(monkeypatch):
    """Record each figure's text boxes (in pixels) and size just before it is saved."""
    original = plots.save_figure
    DRAWN.clear()

    def inspect(fig, path, dpi=100):
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        DRAWN.append({"size": (fig.bbox.width, fig.bbox.height), "axes": fig.axes,
                      "texts": [(t.get_text(), t.get_fontsize(), t.get_window_extent(renderer),
                                 t.axes) for t in texts(fig)]})
        return original(fig, path, dpi)

    monkeypatch.setattr(plots, "save_figure", inspect)


def assert_inside_and_apart(figure):
    width, height = figure["size"]
    for text, _, box, _ in figure["texts"]:
        assert box.x0 >= -0.5 and box.y0 >= -0.5, f"{text!r} is clipped ({box})"
        assert box.x1 <= width + 0.5 and box.y1 <= height + 0.5, f"{text!r} is clipped ({box})"
    titles = [(text, box, ax) for text, _, box, ax in figure["texts"] if ax is not None]
    for i, (a, box_a, ax_a) in enumerate(titles):
        for b, box_b, ax_b in titles[i + 1:]:
            assert ax_a is ax_b or not box_a.overlaps(box_b), f"{a!r} overlaps {b!r}"


def test_filters_of_the_shipped_model_are_titled_inside_the_figure(tmp_path):
    assert main(["figures", "filters", "cifar10-conv-local", "--out",
                 str(tmp_path / "f.png")]) == 0
    assert_inside_and_apart(DRAWN[-1])
    title = " ".join(t for t, *_ in DRAWN[-1]["texts"] if "conv1 kernels" in t).split()
    assert " ".join(title) == "cifar-conv-local conv1 kernels (cifar10-conv-local.safetensors)"


def test_long_file_names_in_predictions_are_shortened_visibly(tmp_path):
    folder = tmp_path / "a_rather_long_folder_name_of_holiday_photos"
    folder.mkdir()
    names = [f"an_extremely_long_camera_file_name_number_{i}_IMG_20240101_123456.png"
             for i in range(6)]   # two rows
    rng = np.random.default_rng(0)
    for name in names:
        Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(folder / name)
    assert main(["figures", "predictions", "cifar10-conv-local", str(folder), "--out",
                 str(tmp_path / "p.png")]) == 0
    figure = DRAWN[-1]
    assert_inside_and_apart(figure)
    titles = [t for t, *_ in figure["texts"] if t.endswith(".png")]
    assert len(titles) == 6 and all("…" in t for t in titles)
    for i, title in enumerate(sorted(titles)):
        head, tail = title.split("…")
        assert f"a_rather_long_folder_name_of_holiday_photos/{names[i]}".startswith(head)
        assert names[i].endswith(tail) and len(tail) >= 8    # the number and extension show


def test_neighbour_labels_are_whole_and_readable(tmp_path):
    rng = np.random.default_rng(0)

    def image():
        return rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)

    rows = [{"image": image(), "title": "query\nan_unusually_long_query_file_name_0001.png",
             "neighbours": [{"image": image(), "title": f"{label}\n12.3"}
                            for label in ["automobile", "aeroplane", "frog", "ship", "horse",
                                          "a-very-long-class-name-for-testing"]]}
            for _ in range(3)]
    plots.plot_neighbours(rows, tmp_path / "n.png")
    figure = DRAWN[-1]
    assert_inside_and_apart(figure)
    labels = [t for t, *_ in figure["texts"]]
    assert "automobile\n12.3" in labels and "aeroplane\n12.3" in labels   # not cut at 14
    assert all(size >= 8 for _, size, *_ in figure["texts"])
    assert any("…" in t and t.startswith("a-very") for t in labels)


def test_relu_vs_tanh_axis_covers_a_short_runs_error_and_says_where_it_is(tmp_path,
                                                                       monkeypatch, capsys):
    import alexnet.experiments.relu_vs_tanh as rvt

    def fake_train_until(config, out, done=lambda h: False):   # a --quick run's numbers
        act = config.model_options["activation"]
        errors = [0.91, 0.86] if act == "relu" else [0.9, 0.895]
        return [{"epoch": i + 1, "train_top1_error": e}
                for i, e in enumerate(errors[:config.epochs])]

    monkeypatch.setattr(rvt, "train_until", fake_train_until)
    results = rvt.run_relu_vs_tanh(str(tmp_path), tmp_path / "exp", [0.01, 0.03], 1, 2)
    assert Path(results["figure"]).is_file()
    assert f"figure: {results['figure']}" in capsys.readouterr().err
    (ax,) = DRAWN[-1]["axes"]
    low, high = ax.get_ylim()
    assert low <= 0.25 and high >= 0.91
