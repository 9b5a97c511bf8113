"""Bad input to the public API: each case raises the library's own error, naming the problem.

One row per case: ``case(id, call, error, match)``. ``call`` takes a temporary folder (a
``pathlib.Path``, for cases that need files) and must raise ``error`` -- a subclass of
:class:`~pyro_groups.validation.PyroGroupsError` -- with a message matching the regular expression
``match``. To add a case, append a row to the table of its area (or start a new table and add it
to ``CASES``).
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pyro
import pytest
import torch

from pyro_groups import (
    ExamScoresDecoder,
    GroupBatch,
    GroupedData,
    GroupVAE,
    MLPDecoder,
    exam_scores,
    fit,
    make_guide,
)
from pyro_groups.data import (
    DataFileError,
    GroupDataError,
    LabelledImages,
    Sprites,
    group_by_factors,
    load_dsprites,
    load_mnist,
    load_shapes3d,
    pairs_sharing,
    poisson_sizes,
)
from pyro_groups.evaluation import (
    plot_ppc,
    posterior_predictive,
    ppc_summary,
    to_inference_data,
)
from pyro_groups.evaluation.disentanglement import dci_from_importance, mig, sap
from pyro_groups.guides import IIDGuide, pair_guide, preset_guide
from pyro_groups.models import IIDVAE
from pyro_groups.plots import error_curves_figure, translation_figure
from pyro_groups import load_modules, save_modules
from pyro_groups.data import DistributedGroupSampler
from pyro_groups.experiments.environment import run_jobs
from pyro_groups.guides import GroupAutoGuide
from pyro_groups.training import (
    CheckpointError,
    NaNGuard,
    fit_distributed,
    fit_replicated,
    train_step,
)
from pyro_groups.adversary import FactorVAEPenalty
from pyro_groups.experiments.exam_scores import Config as RowConfig
from pyro_groups.experiments.exam_scores import build as build_row
from pyro_groups.experiments.exam_scores import run as run_exam_scores
from pyro.infer import Trace_ELBO
from pyro_groups.validation import (
    ArgumentError,
    ArgumentKeyError,
    ArgumentTypeError,
    PyroGroupsError,
    check_device,
    check_output_dir,
)


def case(id: str, call: Callable[[Path], Any], error: type, match: str, **kwargs: Any) -> Any:
    return pytest.param(call, error, match, id=id, **kwargs)


def small() -> GroupedData:
    return exam_scores(8, seed=0)


def batch() -> GroupBatch:
    data = small()
    return data[torch.arange(len(data))]


class NoSizes(torch.nn.Module):
    """A decoder that does not say its code sizes."""

    def forward(self, u, v):
        return pyro.distributions.Normal(v, 1.0).to_event(1)


def dsprites_file(tmp: Path, duplicate: bool) -> Path:
    classes = np.stack(np.meshgrid(np.arange(2), np.arange(3), indexing="ij"), -1).reshape(-1, 2)
    if duplicate:
        classes = np.concatenate([classes, classes[:1]])
    imgs = np.zeros((len(classes), 4, 4), np.uint8)
    path = tmp / "dsprites.npz"
    np.savez(path, imgs=imgs, latents_classes=classes)
    return path


def shapes3d_file(tmp: Path) -> Path:
    import h5py

    labels = np.tile(np.array([[0.0, 1.0], [0.5, 2.0]]), (3, 1))
    labels[4, 1] = np.nan
    path = tmp / "3dshapes.h5"
    with h5py.File(path, "w") as f:
        f["images"] = np.zeros((len(labels), 4, 4, 3), np.uint8)
        f["labels"] = labels
    return path


def a_file(tmp: Path) -> Path:
    path = tmp / "results.json"
    path.write_text("{}")
    return path


def bernoulli_on_scores(_: Path) -> Any:
    model = GroupVAE(MLPDecoder(2, 1, 1, hidden=(4,), likelihood="bernoulli"))
    return fit(model, make_guide(1, 2, 1, hidden=(4,)), small(), epochs=1, progress=False)


def draws(num_samples: int = 2) -> dict[str, torch.Tensor]:
    model, guide = GroupVAE(ExamScoresDecoder()), preset_guide("gvae", 1, 2, 1, hidden=(4,))
    return posterior_predictive(model, guide, batch(), num_samples=num_samples)


DATA = [
    case("exam_scores(10.5)", lambda t: exam_scores(10.5), ArgumentTypeError,
         "num_groups must be an integer, got 10.5"),
    case("exam_scores(True)", lambda t: exam_scores(True), ArgumentTypeError, "got the bool True"),
    case("exam_scores(0)", lambda t: exam_scores(0), ArgumentError,
         "num_groups must be an integer >= 1, got 0"),
    case("exam_scores(noise=-1)", lambda t: exam_scores(16, noise=-1), ArgumentError,
         "noise must be >= 0.0, got -1.0"),
    case("exam_scores(noise=nan)", lambda t: exam_scores(16, noise=math.nan), ArgumentError,
         "noise must be a finite number"),
    case("exam_scores(min_size=0)", lambda t: exam_scores(16, min_size=0), ArgumentError,
         "min_size must be an integer >= 1"),
    case("split(True)", lambda t: small().split(True), ArgumentTypeError,
         r"holdout .* must be an integer, got the bool True"),
    case("split(1.5)", lambda t: small().split(1.5), ArgumentError,
         r"holdout must be in \(0.0, 1.0\), got 1.5"),
    case("split(8) of 8", lambda t: small().split(8), ArgumentError, "both parts non-empty"),
    case("batches(0)", lambda t: next(small().batches(0)), ArgumentError,
         "batch_size must be an integer >= 1"),
    case("batches(2.5)", lambda t: next(small().batches(2.5)), ArgumentTypeError,
         "batch_size must be an integer"),
    case("data[8] of 8", lambda t: small()[8], ArgumentError, "index out of range for 8 groups"),
    case("data[[0.5]]", lambda t: small()[[0.5]], ArgumentTypeError, "index must hold integers"),
    case("data[bool mask of 2]", lambda t: small()[[True, False]], ArgumentError,
         r"boolean index must have shape \[8\]"),
    case("from_groups([])", lambda t: GroupedData.from_groups([]), GroupDataError, "no groups"),
    case("from_groups(event mismatch)",
         lambda t: GroupedData.from_groups([np.ones((2, 3)), np.ones((2, 4))]), GroupDataError,
         r"group 1 has shape \(2, 4\)"),
    case("from_groups(complex)", lambda t: GroupedData.from_groups([np.ones(2) * 1j]),
         GroupDataError, "must hold real numbers, got dtype complex128"),
    case("from_groups(strings)", lambda t: GroupedData.from_groups([np.array(["a", "b"])]),
         GroupDataError, "must hold real numbers"),
    case("from_groups(NaN)", lambda t: GroupedData.from_groups([np.array([1.0, np.nan])]),
         GroupDataError, "1 non-finite"),
    case("from_groups(v_true rows)",
         lambda t: GroupedData.from_groups([np.ones(3)], v_true=[np.ones(2)]), GroupDataError,
         "v_true.0. has 2 rows but group 0 has 3"),
    case("GroupedData(int mask)",
         lambda t: GroupedData(torch.ones(2, 3, 1), torch.ones(2, 3, dtype=torch.int64)),
         GroupDataError, "mask must be a bool tensor"),
    case("GroupBatch(numpy x)",
         lambda t: GroupBatch(np.ones((2, 3, 1)), torch.ones(2, 3, dtype=torch.bool)),
         GroupDataError, "x must be a torch.Tensor"),
    case("group_by_factors(group_size=0)",
         lambda t: group_by_factors(Sprites(8), ["shape"], 4, 0), ArgumentError,
         "group_size must be >= 1"),
    case("group_by_factors(unknown factor)",
         lambda t: group_by_factors(Sprites(8), ["colour"], 4, 2), ArgumentKeyError,
         "unknown factor 'colour'"),
    case("group_by_factors(rng=0.5)",
         lambda t: group_by_factors(Sprites(8), ["shape"], 4, 2, rng=0.5), ArgumentTypeError,
         "rng must be a seed"),
    case("pairs_sharing(k=5)", lambda t: pairs_sharing(Sprites(8), 4, k=5), ArgumentError,
         r"k must be in \[0, 5\)"),
    case("Sprites(4)", lambda t: Sprites(4), ArgumentError, "image_size must be an integer >= 8"),
    case("poisson_sizes(-1)", lambda t: poisson_sizes(-1.0), ArgumentError, "mean must be >= 0"),
    case("LabelledImages(float labels)",
         lambda t: LabelledImages(np.zeros((2, 4, 4)), np.array([0.5, 1.0])), ArgumentError,
         "labels must be non-empty non-negative integers"),
    case("load_dsprites(duplicate rows)", lambda t: load_dsprites(dsprites_file(t, True)),
         DataFileError, r"1 row\(s\) repeat a factor combination \(e.g. rows 0 and 6"),
    case("load_shapes3d(NaN label)", lambda t: load_shapes3d(shapes3d_file(t)), DataFileError,
         "labels hold 1 NaN/inf value.* row 4, column 1"),
    case("load_mnist(split='val')", lambda t: load_mnist(t, split="val"), ArgumentError,
         "unknown split 'val'"),
]

MODELS = [
    case("GroupVAE(decoder without u_dim)", lambda t: GroupVAE(NoSizes()), ArgumentError,
         "decoder NoSizes has no u_dim attribute; pass GroupVAE"),
    case("GroupVAE(not a module)", lambda t: GroupVAE("decoder"), ArgumentTypeError,
         "decoder must be a torch.nn.Module"),
    case("ExamScoresDecoder(noise=0)", lambda t: ExamScoresDecoder(noise=0), ArgumentError,
         r"noise must be > 0.0, got 0.0"),
    case("MLPDecoder(likelihood='gaussian')",
         lambda t: MLPDecoder(2, 1, 1, likelihood="gaussian"), ArgumentError,
         "unknown likelihood 'gaussian'"),
    case("make_guide(x_dim=0)", lambda t: make_guide(0, 2, 1), ArgumentError,
         "x_dim must be an integer >= 1, got 0"),
    case("make_guide(group='median')", lambda t: make_guide(1, 2, 1, group="median"),
         ArgumentError, "unknown group 'median'"),
    case("make_guide(hidden=(0,))", lambda t: make_guide(1, 2, 1, hidden=(0,)), ArgumentError,
         r"hidden\[0\] must be an integer >= 1"),
    case("pair_guide(kind='vae')", lambda t: pair_guide("vae", 1, 2, 1), ArgumentError,
         "unknown kind 'vae'"),
    case("make_guide dims vs data", lambda t: make_guide(3, 2, 1)(batch().x, batch().mask),
         GroupDataError, "built for x_dim=3 .* has 1 .* build it with x_dim=1"),
    case("IIDGuide dims vs data", lambda t: IIDGuide(5, 2)(batch().x, batch().mask),
         GroupDataError, "built for x_dim=5"),
    case("guide(None, mask)", lambda t: make_guide(1, 2, 1)(None, batch().mask), GroupDataError,
         "x is None: a guide infers codes from observations"),
    case("decoder event shape vs data",
         lambda t: GroupVAE(MLPDecoder(2, 1, 3))(batch().x, batch().mask), GroupDataError,
         r"x has event shape \[1\] .* event shape \[3\]"),
    case("IIDVAE(Bernoulli) on real data",
         lambda t: IIDVAE(MLPDecoder(0, 2, 1, likelihood="bernoulli"))(batch().x, batch().mask),
         GroupDataError, "outside the support .* Bernoulli likelihood"),
    case("fit: Bernoulli decoder on real data", bernoulli_on_scores, GroupDataError,
         r"observation\(s\) of x lie outside the support"),
]

EVALUATION = [
    case("posterior_predictive(num_samples=0)", lambda t: draws(num_samples=0), ArgumentError,
         "num_samples must be an integer >= 1, got 0"),
    case("posterior_predictive(batch='x')",
         lambda t: posterior_predictive(GroupVAE(ExamScoresDecoder()), make_guide(1, 2, 1), "x"),
         ArgumentTypeError, "batch must be a GroupBatch or a GroupedData"),
    case("to_inference_data(no replicates)",
         lambda t: to_inference_data(batch(), {"u": torch.zeros(2, 8, 2)}), ArgumentError,
         "draws must hold replicates 'x'"),
    case("to_inference_data(pointwise='school')",
         lambda t: to_inference_data(batch(), draws(), pointwise="school"), ArgumentError,
         "unknown pointwise 'school'"),
    case("ppc_summary(other batch)",
         lambda t: ppc_summary(exam_scores(3, seed=1)[[0, 1, 2]], draws()), ArgumentError,
         r"draws\['x'\] must have shape"),
    case("plot_ppc(num_pp_samples=0)",
         lambda t: plot_ppc(to_inference_data(batch(), draws()), t / "p.png", num_pp_samples=0),
         ArgumentError, "num_pp_samples must be an integer >= 1"),
    case("mig(NaN codes)",
         lambda t: mig(np.array([[0.0], [np.nan], [1.0]]), np.array([[0], [1], [1]])),
         ArgumentError, r"codes has 1 non-finite \(NaN/inf\) value\(s\), the first at index "
         r"\(1, 0\)"),
    case("sap(rows differ)", lambda t: sap(np.zeros((5, 2)), np.zeros((4, 2))), ArgumentError,
         "codes and factors need the same number of rows, got 5 and 4"),
    case("dci_from_importance(inf)", lambda t: dci_from_importance([[1.0, np.inf]]),
         ArgumentError, "importance has 1 non-finite"),
    case("translation_figure([])", lambda t: translation_figure([], t / "t.png"), ArgumentError,
         "panels is empty"),
    case("error_curves_figure(1-D curves)",
         lambda t: error_curves_figure({"m": {"rec_err": [1.0, 2.0]}}, ["rec_err"], t / "e.png"),
         ArgumentError, r"must be \[seeds\]\[epochs\]"),
]

no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
ARGUMENTS = [
    case("device='banana'", lambda t: check_device("banana"), ArgumentError,
         "device='banana' is not a device torch knows"),
    case("device='cuda' without CUDA", lambda t: check_device("cuda"), ArgumentError,
         "CUDA is not available", marks=no_cuda),
    case("device='meta'", lambda t: check_device("meta"), ArgumentError, "holds no data"),
    case("out=<existing file>", lambda t: check_output_dir(a_file(t)), ArgumentError,
         "is an existing file, not a folder"),
    case("out=<inside a file>", lambda t: check_output_dir(a_file(t) / "sub"), ArgumentError,
         "is inside .* which is an existing file, not a folder"),
]


def fit_small(**kwargs: Any) -> Any:
    model, guide = GroupVAE(ExamScoresDecoder()), make_guide(1, 2, 1, hidden=(4,))
    return fit(model, guide, small(), progress=False, **kwargs)


def resume_other(tmp: Path, **changes: Any) -> Any:
    """Resume a one-epoch checkpoint with something of the run changed."""
    from pyro_groups.adversary import set_penalty

    model, guide = GroupVAE(ExamScoresDecoder()), make_guide(1, 2, 1, hidden=(4,))
    fit(model, guide, small(), epochs=1, checkpoint=tmp / "c.pt", progress=False)
    kwargs: dict[str, Any] = {"checkpoint": tmp / "c.pt", "resume": True, "epochs": 2,
                              "progress": False}
    if changes.get("guide"):
        guide = make_guide(1, 2, 1, hidden=(8,))
    data = exam_scores(9, seed=0) if changes.get("data") else small()
    if changes.get("penalty"):
        kwargs["penalties"] = [set_penalty(1, 1, hidden=(4,), seed=0)]
    return fit(model, guide, data, **kwargs)


def cli(*flags: str) -> Any:
    from pyro_groups.cli import main

    try:
        main(["exam-scores", *flags])
    except SystemExit as e:  # argparse: turn its exit into the library's error for the table
        raise ArgumentError(f"exit {e.code}") from e


TRAINING = [
    case("fit(clip_norm=-1)", lambda t: fit_small(clip_norm=-1), ArgumentError,
         "clip_norm must be > 0"),
    case("fit(clip_norm=0)", lambda t: fit_small(clip_norm=0), ArgumentError,
         "clip_norm must be > 0"),
    case("fit(epochs=-1)", lambda t: fit_small(epochs=-1), ArgumentError,
         "epochs must be an integer >= 0"),
    case("fit(num_particles=0)", lambda t: fit_small(num_particles=0), ArgumentError,
         "num_particles must be an integer >= 1"),
    case("fit(lr=nan)", lambda t: fit_small(lr=math.nan), ArgumentError,
         "lr must be a finite number"),
    case("fit(device='meta')", lambda t: fit_small(device="meta"), ArgumentError,
         "holds no data"),
    case("fit(optimizer=<torch optimiser instance>)",
         lambda t: fit_small(optimizer=torch.optim.Adam([torch.zeros(1, requires_grad=True)])),
         ArgumentTypeError, "factory"),
    case("fit(<bare AutoNormal>)",
         lambda t: fit(GroupVAE(ExamScoresDecoder()),
                       pyro.infer.autoguide.AutoNormal(GroupVAE(ExamScoresDecoder())), small(),
                       progress=False),
         ArgumentTypeError, "GroupAutoGuide"),
    case("resume(another guide)", lambda t: resume_other(t, guide=True), CheckpointError,
         "different guide"),
    case("resume(other data)", lambda t: resume_other(t, data=True), CheckpointError,
         "another data set"),
    case("resume(other penalties)", lambda t: resume_other(t, penalty=True), CheckpointError,
         "another set of penalties"),
    case("load_modules(missing name)",
         lambda t: (save_modules(t / "m.pt", guide=make_guide(1, 2, 1, hidden=(4,))),
                    load_modules(t / "m.pt", model=GroupVAE(ExamScoresDecoder()))),
         CheckpointError, "holds no module 'model'"),
    case("cli --epochs 0", lambda t: cli("--epochs", "0"), ArgumentError, "exit 2"),
    case("cli --out <file>", lambda t: cli("--out", str(a_file(t))), ArgumentError, "exit 2"),
]


def deferred_guard_without_fused_adam(_: Path) -> Any:
    model, guide = GroupVAE(ExamScoresDecoder()), make_guide(1, 2, 1, hidden=(4,))
    params = list(guide.parameters())
    return train_step(Trace_ELBO(), model, guide, torch.optim.Adam(params), params, batch(),
                      num_groups=8, guard=NaNGuard(deferred=True))


def fit_distributed_small(**kwargs: Any) -> Any:
    guide = kwargs.pop("guide", make_guide(1, 2, 1, hidden=(4,)))
    return fit_distributed(GroupVAE(ExamScoresDecoder()), guide, small(), progress=False,
                           **kwargs)


SCALE = [
    case("DistributedGroupSampler(N < G * W)",
         lambda t: DistributedGroupSampler(7, 4, num_replicas=2, rank=0), ArgumentError,
         "a global batch of 4 groups x 2 ranks needs at least 8 groups; the data set has 7"),
    case("DistributedGroupSampler(rank=2 of 2)",
         lambda t: DistributedGroupSampler(8, 2, num_replicas=2, rank=2), ArgumentError,
         r"rank must be an integer in \[0, 1\], got 2"),
    case("run_jobs(workers=0)",
         lambda t: run_jobs(print, [1], workers=0, progress=False, desc=""), ArgumentError,
         "workers must be an integer >= 1"),
    case("train_step(deferred guard, Adam not fused)", deferred_guard_without_fused_adam,
         ArgumentTypeError, "fused=True"),
    case("fit_distributed(loss='jit')", lambda t: fit_distributed_small(loss="jit"),
         ArgumentError, "does not run JIT ELBOs"),
    case("fit_distributed(seed=None)", lambda t: fit_distributed_small(seed=None),
         ArgumentTypeError, "seed must be an integer"),
    case("fit_distributed(<autoguide>)",
         lambda t: fit_distributed_small(guide=GroupAutoGuide(
             pyro.infer.autoguide.AutoNormal, GroupVAE(ExamScoresDecoder()))),
         ArgumentTypeError, "does not train GroupAutoGuide"),
]


def replicated_small(names: tuple[str, ...] = ("gvae", "gvae"), **kwargs: Any) -> Any:
    reps = [build_row(name, RowConfig(hidden=(4,))) for name in names]
    args = {"data": small(), "seeds": [0, 1], "epochs": 1, "progress": False, **kwargs}
    return fit_replicated(reps, **args)


def replicated_with(penalties: list, guide: Any = None) -> Any:
    guide = guide if guide is not None else make_guide(1, 2, 1, hidden=(4,))
    return fit_replicated([(GroupVAE(ExamScoresDecoder()), guide, penalties)], small(),
                          seeds=[0], epochs=1, progress=False)


REPLICATED = [
    case("fit_replicated(seeds of another length)", lambda t: replicated_small(seeds=[0]),
         ArgumentError, "seeds must be 2 ints"),
    case("fit_replicated(seeds=[0, 1.5])", lambda t: replicated_small(seeds=[0, 1.5]),
         ArgumentTypeError, r"seeds\[1\]"),
    case("fit_replicated(rows of other shapes)",
         lambda t: replicated_small(("gvae", "mlvae")), ArgumentError,
         "replicate 1 .* differs from replicate 0"),
    case("fit_replicated(data of other sizes)",
         lambda t: replicated_small(data=[small(), exam_scores(9, seed=0)]), ArgumentError,
         "one size"),
    case("fit_replicated(a FactorVAEPenalty)",
         lambda t: replicated_with([FactorVAEPenalty(3, 1.0)]), ArgumentTypeError, "MIPenalty"),
    case("fit_replicated(mixture guide)",
         lambda t: replicated_with([], make_guide(1, 2, 1, group="mixture",
                                                  instance="unconditional", hidden=(4,))),
         ArgumentError, "reparameterised Normal"),
    case("exam-scores Config(replicas=0)", lambda t: run_exam_scores(RowConfig(replicas=0), t),
         ArgumentError, "replicas must be an integer >= 1"),
]

CASES = DATA + MODELS + EVALUATION + ARGUMENTS + TRAINING + SCALE + REPLICATED


@pytest.mark.parametrize("call, error, match", CASES)
def test_bad_input_raises_the_librarys_own_error(tmp_path, call, error, match):
    assert issubclass(error, PyroGroupsError), "use (or add) one of the library's error classes"
    with pytest.raises(error, match=match):
        call(tmp_path)
