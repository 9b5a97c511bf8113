r"""The evaluations of the UG-VAE experiments, on trained models: sampling grids (Figs. 3-4),
structured batch classification (Table 1), clustering NMI, and domain alignment (Fig. 5).

Every function takes a model and/or guide with the package's conventions (group code ``u`` =
UG-VAE's :math:`\beta`, instance code ``v`` = its :math:`z`), so UG-VAE and ML-VAE go through the
same code.
"""
from __future__ import annotations

from typing import Any, Callable, Optional, Sequence

import numpy as np
import torch

from pyro_groups.data.batch import GroupBatch
from pyro_groups.evaluation.clusters import cluster_assignments
from pyro_groups.evaluation.codes import decode, encode

CLASSIFIERS = ("linear_svm", "rbf_svm")
FEATURES = ("posterior_mean", "posterior_sample")
# grouping name -> (class of a digit label, description)
GROUPINGS: dict[str, tuple[Callable[[np.ndarray], np.ndarray], str]] = {
    "low_high": (lambda y: (y >= 5).astype(np.int64), "digits 0-4 (0) vs 5-9 (1)"),
    "even_odd": (lambda y: (y % 2).astype(np.int64), "even (0) vs odd (1) digits"),
}


def full_batch(x: torch.Tensor) -> GroupBatch:
    """``x`` ``[G, K, ...]`` as a batch of full groups."""
    return GroupBatch(x, torch.ones(x.shape[:2], dtype=torch.bool, device=x.device))


@torch.no_grad()
def sampling_grid(
    model, cluster: Optional[int], rows: int = 7, cols: int = 7, u_range: float = 1.0,
    v_range: float = 3.0,
) -> torch.Tensor:
    r"""Fig. 3 (UG-VAE, ``cluster`` = :math:`d`) or Fig. 4 (``cluster=None``, e.g. ML-VAE):
    decoder means ``[rows, cols, C, H, W]``. Row :math:`r` has :math:`\beta = t_r \mathbf{1}`,
    :math:`t_r` from ``-u_range`` to ``u_range`` (the diagonal of the prior's unit box); column
    :math:`j` has :math:`z = \mu + s_j \mathbf{1}`, :math:`s_j` from ``-v_range`` to ``v_range``,
    around :math:`\mu = \mu^{(d)}(\beta)` (UG-VAE) or the prior mean 0."""
    ref = next(model.parameters())
    t = torch.linspace(-u_range, u_range, rows, device=ref.device)
    u = t[:, None].expand(rows, model.u_dim)
    s = torch.linspace(-v_range, v_range, cols, device=ref.device)
    centre = torch.zeros(rows, model.v_dim, device=ref.device)
    if cluster is not None:
        centre = model.mixture(u)[0][:, cluster]
    v = centre[:, None, :] + s[None, :, None]
    return decode(model, u, v)


def grid_effects(images: Any) -> dict[str, float]:
    """How much a grid ``[R, S, ...]`` changes along its rows' variable (``beta``: the first
    against the last row) and its columns' (``z``: first against last column): mean absolute
    pixel differences."""
    x = torch.as_tensor(np.asarray(images))
    return {"beta_effect": float((x[-1] - x[0]).abs().mean()),
            "z_effect": float((x[:, -1] - x[:, 0]).abs().mean())}


@torch.no_grad()
def interpolation_grid(
    model, guide, batch_a: torch.Tensor, batch_b: torch.Tensor, item_a: int, item_b: int,
    steps: int = 7,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    r"""Fig. 5: decode :math:`\beta` on the line between the posterior means of two batches
    (rows) and :math:`z` between the posterior means of one image of each (columns). Returns the
    images ``[steps, steps, C, H, W]`` and the two ends ``u_a``, ``u_b`` ``[u_dim]``."""
    u_a, v_a = encode(guide, full_batch(batch_a[None]))
    u_b, v_b = encode(guide, full_batch(batch_b[None]))
    w = torch.linspace(0, 1, steps, device=u_a.device)[:, None]
    u = (1 - w) * u_a + w * u_b
    v = (1 - w) * v_a[0, item_a] + w * v_b[0, item_b]
    return decode(model, u, v[None].expand(steps, steps, -1)), u_a[0], u_b[0]


def structured_batches(
    labels: np.ndarray, grouping: str, size: int, per_class: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Batches ``[3 * per_class, size]`` of image indices and their classes ``[3 * per_class]``:
    class 0 and 1 from the grouping's two halves, class 2 random batches from all images. Each
    batch draws its images without replacement."""
    halves = GROUPINGS[grouping][0](labels)
    pools = [np.flatnonzero(halves == c) for c in (0, 1)] + [np.arange(len(labels))]
    if min(len(p) for p in pools) < size:
        raise ValueError(f"a class of grouping {grouping!r} has fewer than {size} images")
    index = [rng.choice(p, size, replace=False) for p in pools for _ in range(per_class)]
    return np.stack(index), np.repeat(np.arange(3), per_class)


@torch.no_grad()
def batch_features(
    guide: Optional[Any], images: torch.Tensor, index: np.ndarray, chunk: int = 64
) -> dict[str, np.ndarray]:
    """Per batch: the mean and one draw of the group posterior (``q(beta | X, Z)`` for UG-VAE,
    ``q(u | X)`` for ML-VAE), or the batch's mean image when ``guide`` is ``None`` (the trivial
    baseline)."""
    out: dict[str, list] = {}
    for start in range(0, len(index), chunk):
        x = images[torch.as_tensor(index[start : start + chunk])]
        if guide is None:
            feats = {"mean_image": x.flatten(2).mean(1)}
        else:
            q = guide.group_posterior(x, torch.ones(x.shape[:2], dtype=torch.bool))
            feats = {"posterior_mean": q.mean[:, 0], "posterior_sample": q.sample()[:, 0]}
        for k, v in feats.items():
            out.setdefault(k, []).append(v.cpu())
    return {k: torch.cat(v).numpy() for k, v in out.items()}


def classify(
    train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray
) -> dict[str, tuple[float, float]]:
    """Train and test accuracy of a linear and an RBF SVM (scikit-learn ``SVC``, ``C=1``, on
    standardised features)."""
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    out = {}
    for name, kernel in zip(CLASSIFIERS, ("linear", "rbf")):
        clf = make_pipeline(StandardScaler(), SVC(kernel=kernel, C=1.0))
        clf.fit(train_x, train_y)
        out[name] = (float(clf.score(train_x, train_y)), float(clf.score(test_x, test_y)))
    return out


def batch_classification(
    guide: Optional[Any],
    images: torch.Tensor,
    labels: np.ndarray,
    batch_sizes: Sequence[int],
    per_class: int,
    seed: int,
) -> list[dict[str, Any]]:
    """Table 1 for one model (``guide=None``: the mean-image baseline) and one seed: for every
    grouping, with and without the random class, batch size and feature kind, the SVMs' train
    and test accuracy. The classifiers' training and test batches are separate random batches of
    the same held-out images (``per_class`` of each class for each)."""
    rows = []
    for g, grouping in enumerate(GROUPINGS):
        for size in batch_sizes:
            feats, ys = {}, {}
            for split in ("train", "test"):
                rng = np.random.default_rng([seed, size, g, int(split == "test")])
                index, ys[split] = structured_batches(labels, grouping, size, per_class, rng)
                feats[split] = batch_features(guide, images, index)
            for task, classes in ((grouping, 2), (f"{grouping}_random", 3)):
                keep = {s: ys[s] < classes for s in ys}
                for kind in feats["train"]:
                    scores = classify(feats["train"][kind][keep["train"]],
                                      ys["train"][keep["train"]],
                                      feats["test"][kind][keep["test"]], ys["test"][keep["test"]])
                    for clf, (train_acc, test_acc) in scores.items():
                        rows.append({"task": task, "classifier": clf, "batch_size": size,
                                     "features": kind, "train_accuracy": train_acc,
                                     "test_accuracy": test_acc})
    return rows


@torch.no_grad()
def clustering_nmi(model, guide, images: torch.Tensor, labels: np.ndarray) -> float:
    """NMI between the argmax of :math:`q(d \\mid z)` (at the mean of :math:`q(z \\mid x)`) and
    the labels, over single images."""
    from sklearn.metrics import normalized_mutual_info_score

    d = cluster_assignments(model, guide, full_batch(images[None]))[0].cpu().numpy()
    return float(normalized_mutual_info_score(labels, d))


@torch.no_grad()
def domain_codes(
    guide, batches: dict[str, torch.Tensor]
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Group posterior means ``[n, u_dim]`` of batches of several kinds (``{kind: [n_k, B, ...]}``),
    with integer kind labels and the kind names."""
    codes, kinds = [], []
    for i, (name, x) in enumerate(batches.items()):
        u, _ = encode(guide, full_batch(x))
        codes.append(u.cpu().numpy())
        kinds.append(np.full(len(x), i))
    return np.concatenate(codes), np.concatenate(kinds), list(batches)


def separability(features: np.ndarray, kinds: np.ndarray, seed: int = 0) -> float:
    """5-fold cross-validated accuracy of a linear SVM telling the batch kinds apart."""
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    clf = make_pipeline(StandardScaler(), SVC(kernel="linear", C=1.0))
    folds = StratifiedKFold(5, shuffle=True, random_state=seed)
    return float(cross_val_score(clf, features, kinds, cv=folds).mean())


def tsne(points: np.ndarray, seed: int = 0) -> np.ndarray:
    """A 2-D t-SNE embedding (scikit-learn, PCA initialisation)."""
    from sklearn.manifold import TSNE

    perplexity = min(30.0, max(2.0, (len(points) - 1) / 3))
    return TSNE(2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(points)
