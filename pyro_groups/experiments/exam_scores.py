"""The CxVAE paper's Exam-Scores comparison (Tables 1 and 2, Figures 3 and 5).

Each row is a guide (group encoder x instance encoder) with an optional mutual-information penalty
(none, Németh's one-observation one or CxVAE's set-based one) trained on the same data with the
known decoder, over several seeds; every epoch the four hold-out errors are recorded. A row's
number is the mean over the last epochs (the paper: epochs 44-64 of 64), then mean / std over
seeds. The paper's numbers, its claims checked on ours and the tables are in
:mod:`~pyro_groups.experiments.exam_scores_report`.

With ``Config.replicas > 1`` (``--paper``: 7) the runs of rows with the same guide architecture
(group encoder x instance encoder), over all seeds, are trained together as replicates of one
computation (:func:`~pyro_groups.training.replicated.fit_replicated`), at most ``replicas`` per
job; each replicate gives the numbers of its solo run to float tolerance. The default
(``replicas = 1``) trains one ``fit`` per run: replication saves only ~4 % at 256 groups a step.
"""
from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import pyro
import torch

from pyro_groups.data.exam_scores import exam_scores, exam_scores_mean
from pyro_groups.evaluation.codes import translate
from pyro_groups.evaluation.exam_scores import exam_scores_errors
from pyro_groups.evaluation.mi_probe import mi_probe
from pyro_groups.experiments.environment import available_cpus, environment, run_jobs, summarize
from pyro_groups.experiments.exam_scores_report import EXTRA_METRICS, METRICS, PAPER, findings
from pyro_groups.guides.group_guide import make_guide
from pyro_groups.models.decoders import ExamScoresDecoder
from pyro_groups.models.group_vae import GroupVAE
from pyro_groups.adversary.mi_penalty import nemeth_penalty, set_penalty
from pyro_groups.training.fit import fit
from pyro_groups.training.replicated import fit_replicated
from pyro_groups.validation import check_int


@dataclass(frozen=True)
class Row:
    """One model of the comparison: a guide composition and an optional penalty factory."""

    group: str
    instance: str
    penalty: Optional[str] = None


# Table 1, then Table 2's ablations: each replaces one CxVAE component (group encoder, instance
# encoder, regulariser) and keeps the others, the set-based penalty included.
ROWS: dict[str, Row] = {
    "cxvae": Row("deepsets", "conditional", "set"),
    "mlvae": Row("product", "unconditional"),
    "gvae": Row("average", "unconditional"),
    "gvae-reg": Row("average", "unconditional", "nemeth"),
    "cxvae-u-average": Row("average", "conditional", "set"),
    "cxvae-u-product": Row("product", "conditional", "set"),
    "cxvae-v-unconditional": Row("deepsets", "unconditional", "set"),
    "cxvae-reg-none": Row("deepsets", "conditional"),
    "cxvae-reg-unconditional": Row("deepsets", "conditional", "nemeth"),
}


# The mutual-information penalties' settings: a small critic (the data are 1-D), one MINE critic
# step per VAE step, one nat per group priced like one nat of a group's ELBO. On 32,768 groups and
# 16 epochs, weight 10 gave the same errors as weight 1 (one seed), and the regularised CxVAE rows
# end at the unregularised one's errors (3 seeds); see README "Mutual-information penalties".
PENALTY_SETTINGS: dict[str, Any] = {
    "estimator": "mine",
    "weight": 1.0,
    "hidden": (32, 32),
    "critic_steps": 1,
    "critic_lr": 1e-3,
    "ema_decay": 0.99,
}


def _nemeth(u_dim: int, v_dim: int, x_dim: int, **kwargs: Any) -> torch.nn.Module:
    """Németh (2020)'s one-observation penalty I(x_k; v_l), l != k (GVAE + REG)."""
    return nemeth_penalty(x_dim, v_dim, **{**PENALTY_SETTINGS, **kwargs})


def _set(u_dim: int, v_dim: int, x_dim: int, **kwargs: Any) -> torch.nn.Module:
    """CxVAE's set-based penalty I(x_{-k}; v_k)."""
    return set_penalty(x_dim, v_dim, **{**PENALTY_SETTINGS, **kwargs})


# name -> factory(u_dim, v_dim, x_dim, **overrides) -> penalty module. Filled at import so that
# spawned worker processes see it too.
PENALTIES: dict[str, Callable[..., torch.nn.Module]] = {"nemeth": _nemeth, "set": _set}


@dataclass
class Config:
    groups: int = 32_768
    holdout: int = 1024
    epochs: int = 16
    seeds: int = 3
    batch_size: int = 256
    lr: float = 1e-3
    hidden: tuple[int, ...] = (64, 64)
    noise: float = 0.1
    last: int = 5
    rows: tuple[str, ...] = tuple(ROWS)
    device: str = "cpu"
    workers: int = field(default_factory=available_cpus)  # one process per core
    replicas: int = 1  # --paper: 7 (one replicated job per row)
    data_seed: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def paper_config() -> Config:
    """The paper's setting: N = 32,768, 64 epochs, 7 seeds, the last 20 epochs averaged."""
    return Config(groups=32_768, epochs=64, seeds=7, last=20, replicas=7)


def smoke_config() -> Config:
    """A seconds-long run for CI."""
    return Config(
        groups=640, holdout=128, epochs=2, seeds=1, last=1, workers=1, batch_size=128, replicas=3,
        extra={"probe": {"steps": 20, "draws": 2}},
    )


def build(name: str, cfg: Config) -> tuple[GroupVAE, torch.nn.Module, list[torch.nn.Module]]:
    """Model, guide and penalties of row ``name``.

    ``cfg.extra["penalty"]`` (a dict) overrides :data:`PENALTY_SETTINGS`, e.g. ``{"weight": 5.0}``.
    """
    row = ROWS[name]
    decoder = ExamScoresDecoder(noise=cfg.noise)
    model = GroupVAE(decoder)
    guide = make_guide(
        1, decoder.u_dim, decoder.v_dim, group=row.group, instance=row.instance, hidden=cfg.hidden
    )
    penalties = []
    if row.penalty is not None:
        overrides = dict(cfg.extra.get("penalty", {}))
        penalties.append(PENALTIES[row.penalty](decoder.u_dim, decoder.v_dim, 1, **overrides))
    return model, guide, penalties


def _translation_panel(model, guide, holdout, name: str) -> dict[str, Any]:
    src, tgt = holdout[torch.tensor([0])], holdout[torch.tensor([1])]
    dev = next(iter(guide.parameters())).device
    src, tgt = src.to(dev), tgt.to(dev)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        tr = translate(model, guide, src, tgt, sample=False)
    keep = src.mask[0]
    truth = exam_scores_mean(tgt.u_true.unsqueeze(-2), src.v_true)
    return {
        "name": name,
        "source": src.x[0, keep, 0].cpu().tolist(),
        "target": tgt.x[0, tgt.mask[0], 0].cpu().tolist(),
        "translated": tr[0, keep, 0].cpu().tolist(),
        "truth": truth[0, keep, 0].cpu().tolist(),
    }


def _data(cfg: Config) -> tuple[Any, Any]:
    data = exam_scores(cfg.groups, seed=cfg.data_seed, noise=cfg.noise)
    train, holdout = data.split(cfg.holdout, seed=cfg.data_seed)
    return train, holdout.to(cfg.device)


def _record(name: str, seed: int, history: Any, model, guide, holdout, cfg: Config) -> dict:
    return {
        "model": name,
        "seed": seed,
        "history": history.to_list(),
        "v_leak": mi_probe(guide, holdout, seed=seed, **cfg.extra.get("probe", {}))["held_out"],
        "translation": _translation_panel(model, guide, holdout, name),
    }


def run_one(name: str, seed: int, cfg: Config) -> dict[str, Any]:
    r"""Train row ``name`` with ``seed``; return its per-epoch errors, the held-out
    :func:`~pyro_groups.evaluation.mi_probe.mi_probe` of its final instance codes (``v_leak``,
    nats of :math:`I(\mathbf{x}_{-k}; v_k)`) and a translation panel."""
    pyro.clear_param_store()
    train, holdout = _data(cfg)
    pyro.set_rng_seed(seed)
    model, guide, penalties = build(name, cfg)
    history = fit(
        model, guide, train,
        epochs=cfg.epochs, batch_size=cfg.batch_size, lr=cfg.lr, penalties=penalties,
        seed=seed, device=cfg.device, progress=False,
        callback=lambda epoch, m, g: exam_scores_errors(m, g, holdout, seed=seed),
    )
    return _record(name, seed, history, model, guide, holdout, cfg)


def run_replicated(runs: list[tuple[str, int]], cfg: Config) -> list[dict[str, Any]]:
    """Train the ``(row, seed)`` runs as replicates of one computation (rows of one guide
    architecture); each run's record is that of :func:`run_one`, up to float rounding."""
    pyro.clear_param_store()
    train, holdout = _data(cfg)
    replicas = []
    for name, seed in runs:
        pyro.set_rng_seed(seed)
        replicas.append(build(name, cfg))
    callbacks = [
        lambda epoch, m, g, seed=seed: exam_scores_errors(m, g, holdout, seed=seed)
        for _, seed in runs
    ]
    histories = fit_replicated(
        replicas, train, seeds=[seed for _, seed in runs], epochs=cfg.epochs,
        batch_size=cfg.batch_size, lr=cfg.lr, device=cfg.device, progress=False,
        callback=callbacks,
    )
    return [
        _record(name, seed, h, rep[0], rep[1], holdout, cfg)
        for (name, seed), h, rep in zip(runs, histories, replicas)
    ]


def plan_jobs(cfg: Config) -> list[list[tuple[str, int]]]:
    """The ``(row, seed)`` runs in jobs of at most ``cfg.replicas`` replicates: the runs of rows
    sharing a guide architecture are split into near-equal jobs; the costliest jobs (penalised
    rows cost about twice an unpenalised one) come first."""
    families: dict[tuple[str, str], list[tuple[str, int]]] = {}
    for seed in range(cfg.seeds):
        for name in cfg.rows:
            families.setdefault((ROWS[name].group, ROWS[name].instance), []).append((name, seed))
    jobs = []
    for runs in families.values():
        parts = math.ceil(len(runs) / max(1, cfg.replicas))
        jobs += [runs[i::parts] for i in range(parts)]

    def cost(job: list[tuple[str, int]]) -> float:
        return sum(2.0 if ROWS[name].penalty else 1.0 for name, _ in job)

    return sorted(jobs, key=cost, reverse=True)


def _run_job(args: tuple[list[tuple[str, int]], Config]) -> dict[str, Any]:
    runs, cfg = args
    wall, cpu = time.perf_counter(), time.process_time()
    if cfg.replicas > 1:
        records = run_replicated(runs, cfg)
    else:
        records = [run_one(name, seed, cfg) for name, seed in runs]
    return {"runs": records, "wall_seconds": time.perf_counter() - wall,
            "cpu_seconds": time.process_time() - cpu}


def summarize_runs(runs: list[dict[str, Any]], cfg: Config) -> list[dict[str, Any]]:
    """Per row: each metric averaged over the last ``cfg.last`` epochs, then mean/std over seeds."""
    rows = []
    for name in cfg.rows:
        mine = sorted((r for r in runs if r["model"] == name), key=lambda r: r["seed"])
        if not mine:
            continue
        row: dict[str, Any] = {"model": name}
        for metric in METRICS + EXTRA_METRICS:
            per_seed = [
                float(np.mean([e[metric] for e in r["history"][-cfg.last :]])) for r in mine
            ]
            row[metric] = summarize(per_seed)
        if all("v_leak" in r for r in mine):
            row["v_leak"] = summarize([r["v_leak"] for r in mine])
        paper = PAPER.get(name, {})
        row["paper"] = {m: {"mean": v[0], "std": v[1], "n": 7} for m, v in paper.items()}
        row["curves"] = {
            m: [[e[m] for e in r["history"]] for r in mine] for m in METRICS + ("loss",)
        }
        rows.append(row)
    return rows


def check_rows(cfg: Config) -> None:
    unknown = [r for r in cfg.rows if r not in ROWS]
    if unknown:
        raise ValueError(f"unknown rows {unknown}; choose from {sorted(ROWS)}")


def run(cfg: Config, out: str | os.PathLike, *, progress: bool = True) -> dict[str, Any]:
    """Run every (row, seed) run in the jobs of :func:`plan_jobs`, write ``results.json`` (with
    the run's wall time and the jobs' CPU seconds) and the figures into ``out``."""
    check_rows(cfg)
    check_int(cfg.replicas, "replicas", min=1)
    wall = time.perf_counter()
    jobs = [(job, cfg) for job in plan_jobs(cfg)]
    done = run_jobs(_run_job, jobs, workers=cfg.workers, progress=progress, desc="exam-scores")
    runs = [r for job in done for r in job["runs"]]
    return write_results(runs, cfg, out, wall_seconds=time.perf_counter() - wall,
                         cpu_seconds=sum(job["cpu_seconds"] for job in done))


def write_results(
    runs: list[dict[str, Any]], cfg: Config, out: str | os.PathLike, **extra: Any
) -> dict[str, Any]:
    """Summarise the runs (records of :func:`run_one`), write ``results.json`` (with ``extra``
    keys) and the figures into ``out``; returns the result."""
    from pyro_groups.plots import error_curves_figure, translation_figure

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rows = summarize_runs(runs, cfg)
    result = {
        "benchmark": "exam_scores",
        "config": asdict(cfg),
        "environment": environment(cfg.device),
        "results": rows,
        "findings": findings(rows),
        **extra,
    }
    (out / "results.json").write_text(json.dumps(result, indent=1))
    panels = [r["translation"] for r in runs if r["seed"] == 0]
    order = {n: i for i, n in enumerate(cfg.rows)}
    panels.sort(key=lambda p: order[p["name"]])
    translation_figure(
        panels, out / "translation.png", title="Exam-Scores translation (hold-out groups 0 -> 1)"
    )
    curves = {r["model"]: r["curves"] for r in rows}
    error_curves_figure(curves, METRICS, out / "errors_by_epoch.png")
    return result
