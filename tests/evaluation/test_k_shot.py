"""k-shot classification from content and style codes (ML-VAE Fig. 6c): the classifier's known
answers, and the protocol on hand-made guides whose codes are the images themselves."""
import math

import numpy as np
import pyro.distributions as dist
import pytest
import torch
from torch import nn
from torch.testing import assert_close

from pyro_groups.evaluation import classifier_scores, fit_classifier, k_shot
from pyro_groups.evaluation.k_shot import class_groups, set_features
from pyro_groups.guides import GroupGuide
from pyro_groups.guides.aggregators import product_of_normals

C = 10  # classes
FAST = {"steps": 400, "lr": 1e-2}


def images(per_class: int, noise: float, seed: int = 0):
    """``x = 2 onehot(y) + noise``: a class is a direction, the noise hides it."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(C).repeat_interleave(per_class)
    x = 2.0 * nn.functional.one_hot(y, C).float() + noise * torch.randn(len(y), C, generator=g)
    return x, y


class ImageContent(nn.Module):
    """q(u | x_k) = N(x_k, s^2): the image is its own content; groups by the product."""

    def __init__(self, scale: float) -> None:
        super().__init__()
        self.scale = scale
        self.anchor = nn.Parameter(torch.zeros(()))

    def forward(self, x, mask):
        loc, scale = product_of_normals(x, torch.full_like(x, self.scale), mask)
        return dist.Normal(loc, scale).to_event(1)


class NoStyle(nn.Module):
    """q(v_k | x_k) = N(0, s^2), the same for every image."""

    def __init__(self, scale: float) -> None:
        super().__init__()
        self.scale = scale
        self.anchor = nn.Parameter(torch.zeros(()))

    def forward(self, x, u=None):
        loc = x.new_zeros(*x.shape[:2], 3)
        return dist.Normal(loc, torch.full_like(loc, self.scale)).to_event(1)


class ImageCode(nn.Module):
    """An i.i.d.-VAE-like guide: no group code, q(z_k | x_k) = N(x_k, s^2)."""

    def __init__(self, scale: float) -> None:
        super().__init__()
        self.scale = scale

    def group_posterior(self, x, mask):
        zero = x.new_zeros(x.shape[0], 1, 0)
        return dist.Normal(zero, torch.ones_like(zero)).to_event(1)

    def instance_posterior(self, x, u=None):
        return dist.Normal(x, torch.full_like(x, self.scale)).to_event(1)


def guide(scale: float = 0.01, style_scale: float = 1.0) -> GroupGuide:
    return GroupGuide(ImageContent(scale), NoStyle(style_scale))


def test_classifier_on_separable_codes_reaches_accuracy_one_and_zero_entropy():
    x, y = images(30, 0.05, seed=0)
    xv, yv = images(10, 0.05, seed=1)
    clf = fit_classifier(x, y, C, valid=(xv, yv), steps=400, lr=1e-2)
    scores = classifier_scores(clf, *images(20, 0.05, seed=2))
    assert scores["accuracy"] == 1.0
    assert scores["cond_entropy_bits"] < 0.05


def test_classifier_on_constant_codes_is_at_chance_with_log2_classes_bits():
    y = torch.arange(C).repeat_interleave(30)
    zeros = torch.zeros(len(y), 4)
    clf = fit_classifier(zeros, y, C, valid=(zeros[:50], y[::6]), steps=400, lr=1e-2)
    scores = classifier_scores(clf, zeros, y)
    assert scores["accuracy"] == pytest.approx(1.0 / C)
    assert scores["cond_entropy_bits"] == pytest.approx(math.log2(C), abs=0.02)
    with pytest.raises(ValueError, match="features must be"):
        fit_classifier(zeros, y[:5], C)


def test_class_groups_cut_every_class():
    labels = np.repeat(np.arange(3), [7, 4, 5])
    groups = class_groups(labels, 3, 0)
    assert sorted(np.concatenate(groups).tolist()) == list(range(16))
    assert all(len(set(labels[g])) == 1 and 1 <= len(g) <= 3 for g in groups)
    assert sorted(len(g) for g in groups) == [1, 1, 2, 3, 3, 3, 3]
    dropped = class_groups(labels, 3, 0, drop_last=True)
    assert all(len(g) == 3 for g in dropped) and len(dropped) == 4
    with pytest.raises(ValueError, match="group size"):
        class_groups(labels, 0)


def test_set_features_accumulate_per_group():
    x, _ = images(2, 0.5)
    groups = [np.array([0, 1]), np.array([2]), np.array([3, 4, 5])]
    content = set_features(guide(), x, groups, sample=False)
    assert_close(content[:2], x[:2].mean(0).expand(2, C))
    assert_close(content[2], x[2])
    assert_close(content[3:], x[3:6].mean(0).expand(3, C))
    style = set_features(guide(), x, groups, code="style", sample=False)
    assert style.shape == (6, 3) and torch.all(style == 0)
    product = set_features(guide(style_scale=2.0), x, groups, code="style", style="product")
    assert product.shape == (6, 3)
    with pytest.raises(ValueError, match="code must be"):
        set_features(guide(), x, groups, code="both")
    with pytest.raises(ValueError, match="no style part"):
        set_features(ImageCode(0.1), x, groups, code="style")


@pytest.mark.parametrize("sample", [False, True])
def test_perfect_content_and_useless_style(sample):
    """Content that is the class: accuracy 1, about 0 bits at every k. Style that is constant
    (means): chance and log2(10) bits; drawn from N(0, 1) noise: chance, and at least about
    log2(10) bits (a bound: the classifier fits some noise)."""
    x, y = images(30, 0.05)
    rows = k_shot(guide(), x, y, K=4, trials=2, sample=sample, classifier=FAST)
    assert [(r["code"], r["k"]) for r in rows] == [(c, k) for c in ("content", "style")
                                                   for k in (1, 2, 3, 4)]
    for r in rows:
        if r["code"] == "content":
            assert r["accuracy"] == 1.0 and r["cond_entropy_bits"] < 0.1
        elif not sample:
            assert r["accuracy"] == pytest.approx(1.0 / C)
            assert r["cond_entropy_bits"] == pytest.approx(math.log2(C), abs=0.05)
        else:
            assert abs(r["accuracy"] - 1.0 / C) < 0.1
            assert math.log2(C) - 0.05 < r["cond_entropy_bits"] < math.log2(C) + 0.6


def test_accumulated_content_gets_more_informative_and_the_vae_baseline_matches():
    """Noisy images: the product of k posteriors averages the noise away, so accuracy rises and
    the entropy bound falls with k. A guide without a group code whose code is the image (the VAE
    baseline, accumulated by the product) gives the same numbers."""
    x, y = images(40, 1.5)
    rows = k_shot(guide(scale=1.0), x, y, K=6, ks=[1, 6], codes=("content",), trials=3,
                  sample=False, classifier=FAST)
    first, last = rows
    assert last["accuracy"] > first["accuracy"] + 0.2
    assert last["cond_entropy_bits"] < first["cond_entropy_bits"] - 0.5
    vae = k_shot(ImageCode(1.0), x, y, K=6, ks=[1, 6], codes=("content",), trials=3,
                 sample=False, classifier=FAST)
    for a, b in zip(rows, vae):
        assert a["accuracy"] == pytest.approx(b["accuracy"])
        assert a["cond_entropy_bits"] == pytest.approx(b["cond_entropy_bits"], rel=1e-4)


def test_k_shot_errors():
    x, y = images(6, 0.1)
    with pytest.raises(ValueError, match="labels must be"):
        k_shot(guide(), x, y[:-1])
    with pytest.raises(ValueError, match="fewer than k"):
        k_shot(guide(), x, y, K=10)
    with pytest.raises(ValueError, match="ks must be"):
        k_shot(guide(), x, y, ks=[0])
