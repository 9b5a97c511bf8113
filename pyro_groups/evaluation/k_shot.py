r"""ML-VAE's quantitative evaluation (Sec. 4, Fig. 6c; supplement Sec. 3): how much a code tells
about the class when the content is accumulated over ``k`` images of it.

Protocol (all images are held out from the VAE's training):

1. Split the images of every class into a classifier-training, a validation and a test part.
2. Training and validation features accumulate ``K`` images: each class's images are cut into
   groups of ``K`` (the last one may be smaller), and every image gets one draw of its group's
   content :math:`c \sim q(C \mid \mathbf{x}_G)` (supplement Eq. 4; ``sample=False``: the mean).
3. A classifier :math:`r(y \mid c)` is trained once per code with the cross-entropy (Adam,
   validation cross-entropy for early stopping).
4. For ``k = 1 .. K`` the test images of every class are cut at random into groups of exactly
   ``k`` (images left over are not used), featurised the same way and scored; ``trials`` random
   cuts are averaged (the paper: 5 trials with different test images).

The scores are the accuracy and the cross-entropy in bits,
:math:`-\mathbb{E}_{p(y, c)} \log_2 r(y \mid c)`, an upper bound on the conditional entropy
:math:`H(Y \mid C)` (supplement Eq. 6). Uninformative codes give chance accuracy and
:math:`\log_2(\#\text{classes})` bits (balanced classes); codes that determine the class give 1
and about 0.

Codes: ``"content"`` is the group code's accumulated posterior
(:func:`~pyro_groups.evaluation.evidence.content_posterior`: the guide's own aggregator). A guide
without a group code (the i.i.d. VAE) gives its whole code :math:`z` accumulated by the product of
normals, the paper's VAE baseline. ``"style"`` is each image's own instance code
(``style="single"``, our reading of the paper: it should not change with ``k``), inferred given
its group's content, or the product of the group's instance posteriors (``style="product"``, a
stricter test: class information spread thinly over the styles adds up).

Choices where the paper is vague: the classifier is ``Linear(d, 256) - tanh - Linear(256, C) -
softmax`` ("two linear layers of 256 hidden units", the first followed by tanh, the second by a
softmax); it is trained full batch with Adam (1e-3, as the paper) and stopped at the best
validation cross-entropy; the splits are ours.
"""
from __future__ import annotations

import copy
from typing import Any, Optional, Sequence

import numpy as np
import pyro.distributions as dist
import torch
from torch import nn
from torch.nn.functional import cross_entropy

from pyro_groups.data.factors import RngLike, as_rng
from pyro_groups.evaluation.evidence import content_posterior, normal_params
from pyro_groups.guides.aggregators import product_of_normals
from pyro_groups.validation import ArgumentError

__all__ = [
    "CODES",
    "CodeClassifier",
    "class_groups",
    "classifier_scores",
    "fit_classifier",
    "k_shot",
    "set_features",
]

CODES: tuple[str, ...] = ("content", "style")
STYLES: tuple[str, ...] = ("single", "product")
LN2 = float(np.log(2.0))


class CodeClassifier(nn.Sequential):
    """``Linear(in_dim, hidden) - tanh - Linear(hidden, num_classes)``; the logits of
    :math:`r(y \\mid c)` (the softmax is in the loss)."""

    def __init__(self, in_dim: int, num_classes: int, hidden: int = 256) -> None:
        super().__init__(nn.Linear(in_dim, hidden), nn.Tanh(), nn.Linear(hidden, num_classes))


@torch.no_grad()
def classifier_scores(
    clf: nn.Module, features: torch.Tensor, labels: torch.Tensor
) -> dict[str, float]:
    """``accuracy`` and ``cond_entropy_bits`` (mean cross-entropy in bits) of ``clf``."""
    logits = clf(features)
    return {
        "accuracy": float((logits.argmax(-1) == labels).double().mean()),
        "cond_entropy_bits": float(cross_entropy(logits, labels)) / LN2,
    }


def fit_classifier(
    features: torch.Tensor,
    labels: torch.Tensor,
    num_classes: int,
    *,
    valid: Optional[tuple[torch.Tensor, torch.Tensor]] = None,
    hidden: int = 256,
    lr: float = 1e-3,
    steps: int = 2000,
    eval_every: int = 20,
    patience: int = 10,
    seed: int = 0,
) -> CodeClassifier:
    """Train a :class:`CodeClassifier` full batch with Adam on the cross-entropy.

    With ``valid`` the weights with the lowest validation cross-entropy (checked every
    ``eval_every`` steps) are kept, and training stops after ``patience`` checks without
    improvement; without it, the last weights.
    """
    if features.dim() != 2 or labels.shape != features.shape[:1]:
        raise ArgumentError(
            f"features must be [n, d] and labels [n], got {list(features.shape)} and "
            f"{list(labels.shape)}"
        )
    if len(labels) == 0:
        raise ArgumentError("no training features")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        clf = CodeClassifier(features.shape[1], num_classes, hidden).to(features)
    opt = torch.optim.Adam(clf.parameters(), lr=lr)
    best, best_state, waited = float("inf"), None, 0
    for step in range(1, steps + 1):
        opt.zero_grad(set_to_none=True)
        cross_entropy(clf(features), labels).backward()
        opt.step()
        if valid is None or step % eval_every:
            continue
        loss = classifier_scores(clf, *valid)["cond_entropy_bits"]
        if loss < best - 1e-6:
            best, best_state, waited = loss, copy.deepcopy(clf.state_dict()), 0
        else:
            waited += 1
            if waited >= patience:
                break
    if best_state is not None:
        clf.load_state_dict(best_state)
    return clf


def class_groups(
    labels: np.ndarray, size: int, rng: RngLike = None, *, drop_last: bool = False
) -> list[np.ndarray]:
    """Cut the indices of every class, in random order, into groups of ``size`` (the last group of
    a class is smaller, or dropped with ``drop_last``)."""
    if size < 1:
        raise ArgumentError(f"group size must be >= 1, got {size}")
    g = as_rng(rng)
    labels = np.asarray(labels)
    out: list[np.ndarray] = []
    for c in np.unique(labels):
        idx = g.permutation(np.flatnonzero(labels == c))
        stop = len(idx) - len(idx) % size if drop_last else len(idx)
        out += [idx[i : i + size] for i in range(0, stop, size)]
    return out


def _accumulated(q: dist.TorchDistribution, mask: torch.Tensor) -> dist.TorchDistribution:
    """The product of the normals ``q`` (batch ``[G, K]``) over each group's real members."""
    loc, scale = normal_params(q)
    loc, scale = product_of_normals(loc, scale, mask)
    return dist.Normal(loc, scale).to_event(1)


def _draw(q: dist.TorchDistribution, shape: torch.Size, sample: bool) -> torch.Tensor:
    return q.expand(shape).sample() if sample else q.mean.expand(*shape, q.event_shape[0])


@torch.no_grad()
def set_features(
    guide: nn.Module,
    x: torch.Tensor,
    groups: Sequence[np.ndarray],
    *,
    code: str = "content",
    sample: bool = True,
    style: str = "single",
    chunk: int = 512,
) -> torch.Tensor:
    """Per-image features ``[n, d]`` of the images ``x[group]`` of every group (rows in the order
    of ``np.concatenate(groups)``); see the module docstring for ``code`` and ``style``."""
    if code not in CODES:
        raise ArgumentError(f"code must be one of {CODES}, got {code!r}")
    if style not in STYLES:
        raise ArgumentError(f"style must be one of {STYLES}, got {style!r}")
    k = max(len(g) for g in groups)
    out = []
    for start in range(0, len(groups), chunk):
        part = groups[start : start + chunk]
        idx = torch.zeros(len(part), k, dtype=torch.long)
        mask = torch.zeros(len(part), k, dtype=torch.bool)
        for i, g in enumerate(part):
            idx[i, : len(g)] = torch.as_tensor(g)
            mask[i, : len(g)] = True
        xb = x[idx.to(x.device)].masked_fill(
            ~mask.to(x.device).view(*mask.shape, *[1] * (x.dim() - 1)), 0.0
        )
        mask = mask.to(x.device)
        qc = content_posterior(guide, xb, mask)
        if qc.event_shape[0] == 0:  # no group code: the VAE baseline, its code accumulated
            if code == "style":
                raise ArgumentError("the guide has no group code, so its code has no style part")
            qc = _accumulated(guide.instance_posterior(xb, None), mask)
        c = _draw(qc, mask.shape, sample)
        if code == "style":
            qv = guide.instance_posterior(xb, c)
            if style == "product":
                qv = _accumulated(qv, mask).expand(mask.shape)
            c = qv.sample() if sample else qv.mean
        out.append(c[mask])
    return torch.cat(out)


def _split(labels: np.ndarray, fractions: tuple[float, float], rng) -> list[np.ndarray]:
    """Per class, the first ``fractions[0]`` of a random order to training, the next
    ``fractions[1]`` to validation, the rest to test."""
    parts: list[list[np.ndarray]] = [[], [], []]
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        a = int(round(fractions[0] * len(idx)))
        b = a + int(round(fractions[1] * len(idx)))
        for p, chunk in zip(parts, (idx[:a], idx[a:b], idx[b:])):
            p.append(chunk)
    return [np.concatenate(p) for p in parts]


def k_shot(
    guide: nn.Module,
    x: torch.Tensor,
    labels: Any,
    *,
    K: int = 10,
    ks: Optional[Sequence[int]] = None,
    codes: Sequence[str] = CODES,
    trials: int = 5,
    fractions: tuple[float, float] = (0.5, 0.2),
    sample: bool = True,
    style: str = "single",
    classifier: Optional[dict[str, Any]] = None,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """Run the protocol of the module docstring on held-out images ``x`` ``[n, *event]`` with
    integer ``labels`` ``[n]``.

    :param K: images accumulated per training / validation feature.
    :param ks: test group sizes (default ``1 .. K``).
    :param fractions: per class, the training and validation shares (the rest is test).
    :param classifier: keyword arguments of :func:`fit_classifier`.
    :param seed: seeds the splits, the cuts, the feature draws and the classifier.
    :returns: rows ``{"code", "k", "accuracy", "cond_entropy_bits"}`` (means over ``trials``),
        plus ``"trials"`` and the number of test images ``"n_test"`` (per trial).
    """
    labels_np = np.asarray(torch.as_tensor(labels).cpu())
    if labels_np.shape != (x.shape[0],):
        raise ArgumentError(f"labels must be [{x.shape[0]}], got {labels_np.shape}")
    ks = list(range(1, K + 1)) if ks is None else [int(k) for k in ks]
    if not ks or min(ks) < 1:
        raise ArgumentError(f"ks must be positive group sizes, got {ks}")
    num_classes = int(labels_np.max()) + 1
    y = torch.as_tensor(labels_np, device=x.device)
    rng = as_rng(seed)
    train, valid, test = _split(labels_np, fractions, rng)
    if min(len(train), len(valid), len(test)) == 0:
        raise ArgumentError(
            f"fractions {fractions} leave an empty split of {len(labels_np)} images"
        )
    if np.bincount(labels_np[test], minlength=num_classes).min() < max(ks):
        raise ArgumentError(f"some class has fewer than k = {max(ks)} test images")
    rows: list[dict[str, Any]] = []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for code in codes:

            def features(index: np.ndarray, size: int, drop_last: bool):
                groups = class_groups(labels_np[index], size, rng, drop_last=drop_last)
                groups = [index[g] for g in groups]
                order = torch.as_tensor(np.concatenate(groups), device=x.device)
                f = set_features(guide, x, groups, code=code, sample=sample, style=style)
                return f, y[order]

            f_train = features(train, K, False)
            f_valid = features(valid, K, False)
            clf = fit_classifier(*f_train, num_classes, valid=f_valid, seed=seed,
                                 **(classifier or {}))
            for k in ks:
                scores = [classifier_scores(clf, *features(test, k, True)) for _ in range(trials)]
                rows.append({
                    "code": code,
                    "k": k,
                    "accuracy": float(np.mean([s["accuracy"] for s in scores])),
                    "cond_entropy_bits": float(np.mean([s["cond_entropy_bits"] for s in scores])),
                    "trials": trials,
                    "n_test": int(sum(len(g) for g in class_groups(
                        labels_np[test], k, 0, drop_last=True))),
                })
    return rows
