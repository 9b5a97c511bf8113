"""Figures of pyro_groups.plots: written as PNGs, laid out without overlaps, pyplot untouched."""
import matplotlib
import numpy as np
import pytest

from pyro_groups.plots import (
    draw_error_curves,
    draw_translation,
    error_curves_figure,
    new_figure,
    translation_figure,
)
from pyro_groups.validation import ArgumentError

PNG = b"\x89PNG"
METRICS = ("rec_err", "trans_err")


def panels(n=3, rng=np.random.default_rng(0)):
    out = []
    for i in range(n):
        src = rng.normal(size=12)
        out.append({"name": f"model {i}", "source": src, "target": rng.normal(2, 2, size=15),
                    "translated": 2 * src + 2, "truth": 2 * src + 2.1})
    return out


def curves(models=9, seeds=3, epochs=7):
    rng = np.random.default_rng(1)
    return {f"model-{m}": {k: rng.uniform(0.1, 10, (seeds, epochs)).tolist() for k in METRICS}
            for m in range(models)}


def boxes(fig):
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    return renderer, [ax.get_window_extent(renderer) for ax in fig.axes]


def assert_no_overlap(box, others):
    for other in others:
        assert not box.overlaps(other), (box, other)


@pytest.fixture
def no_backend_switch(monkeypatch):
    """Fail if anything calls matplotlib.use, and check pyplot's figures are left alone."""
    import matplotlib.pyplot as plt

    def forbidden(*args, **kwargs):
        raise AssertionError("matplotlib.use was called")

    monkeypatch.setattr(matplotlib, "use", forbidden)
    backend, figures = matplotlib.get_backend(), plt.get_fignums()
    yield
    assert matplotlib.get_backend() == backend and plt.get_fignums() == figures


def test_figures_are_written_without_touching_pyplot(tmp_path, no_backend_switch):
    path = translation_figure(panels(), tmp_path / "translation.png", title="T")
    assert path.endswith("translation.png")
    assert (tmp_path / "translation.png").read_bytes()[:4] == PNG
    error_curves_figure(curves(), METRICS, tmp_path / "errors.png")
    assert (tmp_path / "errors.png").read_bytes()[:4] == PNG
    assert new_figure().canvas.get_default_filetype() == "png"


def test_translation_title_and_legend_cover_no_panel():
    fig = draw_translation(panels(4), title="A long title: hold-out groups 0 -> 1")
    renderer, axes = boxes(fig)
    assert all(ax.get_legend() is None for ax in fig.axes) and len(fig.legends) == 1
    assert_no_overlap(fig.legends[0].get_window_extent(renderer), axes)
    title = fig._suptitle.get_window_extent(renderer)
    assert_no_overlap(title, axes + [fig.legends[0].get_window_extent(renderer)])
    for ax in fig.axes:  # each panel's own title stays above its data area
        assert ax.title.get_window_extent(renderer).y0 >= ax.get_window_extent(renderer).y1 - 1


@pytest.mark.parametrize("epochs", [1, 3, 7, 64])
def test_error_curves_have_integer_epoch_ticks_and_an_outside_legend(epochs):
    fig = draw_error_curves(curves(epochs=epochs), METRICS)
    renderer, axes = boxes(fig)
    for ax in fig.axes:
        lo, hi = ax.get_xlim()
        ticks = [t for t in ax.get_xticks() if lo <= t <= hi]
        assert ticks and all(float(t).is_integer() for t in ticks), ticks
    assert all(ax.get_legend() is None for ax in fig.axes) and len(fig.legends) == 1
    legend = fig.legends[0]
    assert len(legend.get_texts()) == 9
    assert_no_overlap(legend.get_window_extent(renderer), axes)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda p: translation_figure([], p / "t.png"), "panels is empty"),
        (lambda p: error_curves_figure({}, METRICS, p / "e.png"), "non-empty"),
        (lambda p: error_curves_figure({"m": {"rec_err": [1.0, 2.0]}}, ["rec_err"], p / "e.png"),
         r"\[seeds\]\[epochs\]"),
    ],
)
def test_bad_figure_input(tmp_path, call, match):
    with pytest.raises(ArgumentError, match=match):
        call(tmp_path)
