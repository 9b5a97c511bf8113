r"""Mutual-information penalties between instance codes and groups (Németh 2020; CxVAE, Sec. 4).

The instance code :math:`v` should carry no information about the group. Both penalties estimate a
mutual information with a critic :math:`T` and a variational lower bound
(:mod:`~pyro_groups.adversary.estimators`), and add it to the minimised loss:

- :func:`nemeth_penalty` (one observation, CxVAE paper Sec. 2.3, eq. 2): :math:`I_r(x; v)` between
  an observation :math:`x_{ik}` and the code :math:`v_{il}` of *another* observation
  :math:`l \ne k` of the same group (:class:`~pyro_groups.adversary.critics.PairCritic`);
- :func:`set_penalty` (set-based, CxVAE Sec. 4, eq. 3): :math:`I_r(\mathbf{x}_{-k}; v_k)` between
  the rest of the group and the code of :math:`x_k`
  (:class:`~pyro_groups.adversary.critics.SetCritic`).

Joint pairs come from one group, marginal pairs take the code from another group
(:func:`~pyro_groups.adversary.critics.sample_pairs`). :class:`MIPenalty` is a minimax game:

- **VAE step** (:meth:`MIPenalty.forward`): the codes of the ELBO's own guide pass
  (``guide_trace``; reparameterised :math:`u \sim q(u \mid \mathbf{x})`,
  :math:`v_k \sim q(v_k \mid x_k[, u])`), scored by the critic with *detached* parameters; the
  returned ``weight * N * bound`` is minimised by the VAE's optimizer, which never holds critic
  parameters;
- **critic step** (:meth:`MIPenalty.critic_step`, after the VAE's update): ``critic_steps`` Adam
  steps on the critic's own optimizer, *maximising* the bound on the same codes, detached (the
  pairs are re-drawn at every inner step).

Without ``guide_trace`` either method draws its own codes from the guide.

Scaling: the bound is an average over anchors :math:`(i, k)` (nats per observation), the ELBO is
a sum over the data set's :math:`N` groups (Pyro scales the batch's :math:`G` groups by
:math:`N / G`); multiplying by :math:`N` (``num_groups``, or :math:`G` without it) makes
``weight`` the price of one nat of mutual information *per group*, in the units of a group's ELBO.

Groups with a single valid observation have no partner (no :math:`\mathbf{x}_{-k}`): they are left
out of both expectations, with one warning per penalty instance. A batch with fewer than two
groups of two or more observations has no marginal pair: the penalty is ``0`` and the critic step
is skipped (one warning).
Padded slots never enter a pair.

Use with ``fit(..., penalties=[pen])``, or in a plain ``pyro.infer.SVI`` loop with
:class:`~pyro_groups.adversary.penalized.PenalizedLoss`::

    pen = set_penalty(x_dim=1, v_dim=1, weight=1.0)
    loss = PenalizedLoss(Trace_ELBO(), [pen])
    svi = SVI(model, guide, pyro.optim.Adam({"lr": 1e-3}), loss=loss)
    for batch in data.batches(256):
        svi.step(batch.x, batch.mask, num_groups=len(data))  # one guide pass
        loss.step_critics()  # the critic's step on the same codes (else: at the next call)
"""
from __future__ import annotations

import contextlib
import hashlib
import warnings
from typing import Any, Callable, Iterator, Optional, Sequence

import torch
from pyro.poutine import Trace
from torch import Tensor, nn

from pyro_groups.data.batch import GroupBatch
from pyro_groups.adversary.base import AdversarialPenalty, detached_call, guide_trace
from pyro_groups.adversary.critics import (
    CriticScores,
    PairCritic,
    SetCritic,
    _uniform_below,
    sample_pairs,
)
from pyro_groups.adversary.estimators import (
    dv_bound,
    infonce_bound,
    mine_bound,
    mine_ema_init,
    nwj_bound,
)

__all__ = ["ESTIMATORS", "MIPenalty", "nemeth_penalty", "set_penalty"]

ESTIMATORS = ("mine", "dv", "nwj", "infonce")


def _group_scores(
    critic: nn.Module, x: Tensor, mask: Tensor, v: Tensor, gen: torch.Generator
) -> CriticScores:
    return critic.group_scores(x, mask, v, gen)


def _infonce_matrix(
    critic: nn.Module, x: Tensor, mask: Tensor, v: Tensor, gen: torch.Generator
) -> Tensor:
    r"""``S[a, b]`` for one anchor per eligible group: context of group ``a`` against the code of
    group ``b`` (the diagonal holds the joint pairs, the rest negatives from other groups)."""
    counts = mask.sum(1)
    groups = torch.nonzero(counts >= 2).squeeze(1)
    idx = sample_pairs(mask, gen)
    order = torch.argsort((~mask).to(torch.int8), dim=1, stable=True)
    k = order[groups, _uniform_below(counts[groups], gen)]
    x = torch.where(mask[..., None], x, torch.zeros_like(x))
    v = torch.where(mask[..., None], v, torch.zeros_like(v))
    if isinstance(critic, SetCritic):
        pooled = critic.pooled(x, mask)[groups, k]
        code = v[groups, k]
        B = groups.numel()
        return critic.score(code[None, :, :].expand(B, B, -1), pooled[:, None, :].expand(B, B, -1))
    if isinstance(critic, PairCritic):
        return critic.score_matrix(x[groups, k], v[groups, idx.joint_slot[groups, k]])
    raise TypeError(
        f"estimator='infonce' needs a PairCritic or a SetCritic, got {type(critic).__name__}"
    )


def _generator_seed(seed: Optional[int]) -> int:
    if seed is not None:
        return int(seed)
    return int(torch.randint(0, 2**62, (1,)))


class MIPenalty(AdversarialPenalty):
    r"""Adversarial mutual-information penalty ``pen(model, guide, batch, num_groups=N)``.

    :param critic: a critic with ``group_scores(x, mask, v, generator) -> CriticScores``
        (:class:`~pyro_groups.adversary.critics.PairCritic` or
        :class:`~pyro_groups.adversary.critics.SetCritic`); the penalty owns it.
    :param estimator: ``"mine"`` (Donsker-Varadhan value; the critic maximises it with MINE's
        moving-average gradient correction), ``"dv"`` (plain Donsker-Varadhan), ``"nwj"`` or
        ``"infonce"`` (one anchor per group, the other groups' codes as negatives; capped at
        :math:`\log G`).
    :param weight: price of one nat per group (see the module docstring for the scaling).
    :param critic_steps: critic updates per :meth:`critic_step` call.
    :param critic_lr: the critic's Adam learning rate.
    :param critic_betas: the critic's Adam betas.
    :param ema_decay: MINE's moving-average decay (``estimator="mine"`` only).
    :param seed: seeds the pair-sampling generator; ``None`` draws a seed from torch's global RNG.
    :param site: the guide's instance-code site.
    :param name: prefix of the records returned by :meth:`critic_step`.
    """

    def __init__(
        self,
        critic: nn.Module,
        *,
        estimator: str = "mine",
        weight: float = 1.0,
        critic_steps: int = 1,
        critic_lr: float = 1e-3,
        critic_betas: tuple[float, float] = (0.9, 0.999),
        ema_decay: float = 0.99,
        seed: Optional[int] = None,
        site: str = "v",
        name: str = "mi",
    ) -> None:
        super().__init__()
        if estimator not in ESTIMATORS:
            raise ValueError(f"estimator must be one of {ESTIMATORS}, got {estimator!r}")
        if critic_steps < 0:
            raise ValueError(f"critic_steps must be >= 0, got {critic_steps}")
        if not 0.0 <= ema_decay < 1.0:
            raise ValueError(f"ema_decay must be in [0, 1), got {ema_decay}")
        self.critic = critic
        self.estimator, self.weight, self.critic_steps = estimator, float(weight), int(critic_steps)
        self.ema_decay, self.site, self.name = float(ema_decay), site, name
        self.own_optimizer(critic, critic_lr, critic_betas)
        self.register_buffer("ema_state", mine_ema_init())
        self.generator = torch.Generator().manual_seed(_generator_seed(seed))
        self._warned: set[str] = set()
        self._prepared: Optional[tuple[Trace, tuple[Optional[Tensor], ...], Tensor]] = None

    def extra_repr(self) -> str:
        return (
            f"estimator={self.estimator!r}, weight={self.weight}, "
            f"critic_steps={self.critic_steps}"
        )

    def _warn_once(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            warnings.warn(message, UserWarning, stacklevel=3)

    def _usable(self, mask: Tensor) -> bool:
        """Warn (once per instance) about single-observation groups; ``False`` if < 2 eligible."""
        counts = mask.sum(1)
        single, eligible = int((counts == 1).sum()), int((counts >= 2).sum())
        if single:
            self._warn_once(
                "single",
                f"{type(self).__name__}({self.name}): {single} group(s) in a batch have a single "
                "valid observation and are left out of the mutual-information penalty (they have "
                "no other observation to pair with); warning once per penalty.",
            )
        if eligible < 2:
            self._warn_once(
                "few",
                f"{type(self).__name__}({self.name}): a batch has {eligible} group(s) with two or "
                "more valid observations; the penalty needs two (a marginal pair takes its code "
                "from another group), so it is 0 and the critic step is skipped for such batches; "
                "warning once.",
            )
            return False
        return True

    def _gen(self, device: torch.device) -> torch.Generator:
        if self.generator.device.type != device.type:
            seed = int(torch.randint(0, 2**62, (1,), generator=self.generator))
            self.generator = torch.Generator(device).manual_seed(seed)
        return self.generator

    def codes(
        self,
        guide: Callable,
        batch: GroupBatch,
        num_groups: Optional[int] = None,
        trace: Optional[Trace] = None,
    ) -> Tensor:
        """Instance codes ``[G, K, v_dim]`` read off ``trace`` (a guide pass on ``batch``), or
        drawn from the guide (reparameterised)."""
        v = guide_trace(guide, batch, num_groups, trace).nodes[self.site]["value"]
        return v.reshape(*batch.mask.shape, -1)

    def _scores(self, x: Tensor, mask: Tensor, v: Tensor, detach_critic: bool) -> Any:
        fn = _infonce_matrix if self.estimator == "infonce" else _group_scores
        gen = self._gen(mask.device)
        if not detach_critic:
            return fn(self.critic, x, mask, v, gen)
        return detached_call(self.critic, fn, x, mask, v, gen)

    def bound(self, x: Tensor, mask: Tensor, v: Tensor, *, detach_critic: bool = True) -> Tensor:
        """The estimator's value on codes ``v`` (no moving-average update, no warnings).

        :param x: ``[G, K, x_dim]``; padded slots may hold anything.
        :param mask: ``[G, K]`` bool, at least two groups with two valid observations.
        :param v: ``[G, K, v_dim]``.
        :param detach_critic: score with detached critic parameters (the VAE step).
        """
        s = self._scores(x, mask, v, detach_critic)
        if self.estimator == "infonce":
            return infonce_bound(s)
        if self.estimator == "nwj":
            return nwj_bound(s.joint, s.marginal, s.mask, s.mask)
        return dv_bound(s.joint, s.marginal, s.mask, s.mask)

    def _critic_objective(self, x: Tensor, mask: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """``(bound, objective)``: maximise ``objective``; MINE updates its moving average."""
        if self.estimator != "mine":
            b = self.bound(x, mask, v, detach_critic=False)
            return b, b
        s = self._scores(x, mask, v, detach_critic=False)
        res = mine_bound(s.joint, s.marginal, self.ema_state, self.ema_decay, s.mask, s.mask)
        with torch.no_grad():
            self.ema_state.copy_(res.ema_state)
        return res.bound, res.surrogate

    def critic_step(
        self,
        model: Callable,
        guide: Callable,
        batch: GroupBatch,
        *,
        num_groups: Optional[int] = None,
        guide_trace: Optional[Trace] = None,
    ) -> dict[str, Tensor]:
        """``critic_steps`` Adam steps of the critic, maximising the bound on detached codes.

        The codes are read once (off ``guide_trace``, or drawn from the guide); the pairs are
        re-drawn at every step. When :meth:`forward` scored the same ``guide_trace`` with the live
        critic, the first step uses the gradient it computed then (one critic forward serves the
        VAE's term and the critic's step).

        :returns: ``{f"{name}_bound": bound before the last step}`` (``{}`` if skipped).
        """
        prepared, self._prepared = self._prepared, None
        mask = batch.mask
        if self.critic_steps == 0 or not self._usable(mask):
            return {}
        steps, value = self.critic_steps, None
        if prepared is not None and guide_trace is not None and prepared[0] is guide_trace:
            self.apply_gradients(prepared[1])
            steps, value = steps - 1, prepared[2]
        if steps:
            x = batch.x.flatten(2)
            with torch.no_grad():
                v = self.codes(guide, batch, num_groups, guide_trace).detach()
            for _ in range(steps):
                value, objective = self._critic_objective(x, mask, v)
                self.update(-objective)
        return {f"{self.name}_bound": value.detach()}

    def forward(
        self,
        model: Callable,
        guide: Callable,
        batch: GroupBatch,
        *,
        num_groups: Optional[int] = None,
        guide_trace: Optional[Trace] = None,
    ) -> Tensor:
        """``weight * N * bound`` on codes with gradients (read off ``guide_trace``, or drawn).

        The VAE's optimiser must not move the critic: with ``guide_trace`` (the one-pass step of
        :class:`~pyro_groups.adversary.penalized.PenalizedLoss`) the critic scores the codes with
        its live parameters once, and the critic's own gradient is taken from this forward for
        its next :meth:`critic_step` (restrict the VAE's backward to the VAE's parameters, as
        ``fit`` does, to skip the critic's part); otherwise its parameters are detached.
        """
        self._prepared = None
        mask = batch.mask
        x = batch.x.flatten(2)
        if not self._usable(mask):
            return x.new_zeros(())
        v = self.codes(guide, batch, num_groups, guide_trace)
        n = mask.shape[0] if num_groups is None else int(num_groups)
        if guide_trace is None or self.critic_steps == 0 or not torch.is_grad_enabled():
            return self.weight * n * self.bound(x, mask, v, detach_critic=True)
        value, objective = self._critic_objective(x, mask, v)
        params = [p for g in self.optimizer.param_groups for p in g["params"]]
        grads = torch.autograd.grad(-objective, params, retain_graph=True, allow_unused=True)
        self._prepared = (guide_trace, grads, value.detach())
        return self.weight * n * value

    def get_extra_state(self) -> Any:
        generator = {"device": str(self.generator.device), "state": self.generator.get_state()}
        return {**super().get_extra_state(), "generator": generator}

    def set_extra_state(self, state: Any) -> None:
        super().set_extra_state(state)
        device = torch.device(state["generator"]["device"])
        gen_state = state["generator"]["state"]
        if device.type == "cuda" and not torch.cuda.is_available():
            # A CUDA generator's state cannot seed a CPU one: derive a seed from it instead.
            digest = hashlib.sha256(gen_state.numpy().tobytes()).digest()
            self.generator = torch.Generator().manual_seed(int.from_bytes(digest[:7], "little"))
            return
        self.generator = torch.Generator(device)
        self.generator.set_state(gen_state)


@contextlib.contextmanager
def _seeded(seed: Optional[int]) -> Iterator[None]:
    """Initialise under ``seed`` without touching the global RNG (no-op for ``None``)."""
    if seed is None:
        yield
        return
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def nemeth_penalty(
    x_dim: int,
    v_dim: int,
    *,
    hidden: Sequence[int] = (64, 64),
    seed: Optional[int] = None,
    **kwargs: Any,
) -> MIPenalty:
    r"""Németh (2020)'s one-observation penalty :math:`I_r(x_{ik}; v_{il})`, :math:`l \ne k`.

    :param x_dim: observation features (images are flattened).
    :param v_dim: instance-code size.
    :param hidden: hidden widths of the :class:`~pyro_groups.adversary.critics.PairCritic`.
    :param seed: seeds the critic's initialisation and the pair sampling.
    :param kwargs: passed to :class:`MIPenalty` (``weight``, ``estimator``, ``critic_steps``, ...).
    """
    with _seeded(seed):
        critic = PairCritic(x_dim, v_dim, tuple(hidden))
    return MIPenalty(critic, seed=seed, **{"name": "nemeth", **kwargs})


def set_penalty(
    x_dim: int,
    v_dim: int,
    *,
    hidden: Sequence[int] = (64, 64),
    feature_dim: Optional[int] = None,
    normalise: str = "K",
    seed: Optional[int] = None,
    **kwargs: Any,
) -> MIPenalty:
    r"""CxVAE's set-based penalty :math:`I_r(\mathbf{x}_{i,-k}; v_{ik})` (Sec. 4, eq. 3).

    :param hidden: hidden widths of both networks of the
        :class:`~pyro_groups.adversary.critics.SetCritic`.
    :param feature_dim: width of the pooled set features (default: the last hidden width).
    :param normalise: ``"K"`` (the paper's :math:`1/K`) or ``"K-1"`` (leave-one-out mean).
    :param seed: seeds the critic's initialisation and the pair sampling.
    :param kwargs: passed to :class:`MIPenalty`.
    """
    with _seeded(seed):
        critic = SetCritic(
            x_dim, v_dim, tuple(hidden), feature_dim=feature_dim, normalise=normalise
        )
    return MIPenalty(critic, seed=seed, **{"name": "set", **kwargs})
