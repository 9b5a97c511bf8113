r"""The mutual-information penalties of several replicates as one module, for
:func:`~pyro_groups.training.replicated.fit_replicated`.

:class:`ReplicatedMIPenalty` plays :math:`R'` independent copies of the
:class:`~pyro_groups.adversary.mi_penalty.MIPenalty` game at once, on a stacked batch
``x`` ``[R, G, K, x_dim]``, ``mask`` ``[R, G, K]`` of which it penalises the replicates
``members`` (the others may carry another penalty, or none):

.. math::
    \mathrm{pen} = \sum_{r \in \text{members}} w_r\, N\, \hat I_{\psi_r}(v_r),

each term a function of replicate :math:`r`'s codes and critic only. The copies keep what makes
them independent and equal to their solo runs:

- one critic of stacked weights (:func:`~pyro_groups.nn_replicated.stack_modules`) and one Adam
  over them, which takes each copy's own Adam step (Adam is elementwise). As in the solo penalty,
  the VAE step's forward scores the codes with the live critics once and keeps the critics'
  gradient for their first step; the VAE's backward is restricted to the VAE's parameters;
- each copy's pairs drawn by :func:`~pyro_groups.adversary.critics.sample_pairs` from the copy's
  *own* generator on the copy's own batch at its own width, exactly as the solo penalty draws
  them, then padded and stacked;
- MINE's moving averages ``[R', 2]``, one per copy; the bounds are the solo estimator functions
  (:mod:`~pyro_groups.adversary.estimators`) mapped over the copies with ``torch.func.vmap``.

It is built from the copies' solo penalties and writes its state back into them
(:meth:`ReplicatedMIPenalty.write_back`); the pair generators *are* the solo penalties'.
Supported: the ``mine``, ``dv`` and ``nwj`` estimators; the copies may differ in ``weight``
only (and in their critics' weights and generators).
"""
from __future__ import annotations

from typing import Any, Callable, Optional, Sequence, cast

import torch
from pyro.poutine import Trace
from torch import Tensor
from torch.func import vmap

from pyro_groups.adversary.base import AdversarialPenalty, detached_call, guide_trace
from pyro_groups.adversary.critics import PairIndices, sample_pairs
from pyro_groups.adversary.estimators import dv_bound, mine_bound, nwj_bound
from pyro_groups.adversary.mi_penalty import MIPenalty
from pyro_groups.data.batch import GroupBatch
from pyro_groups.errors import ArgumentError, ArgumentTypeError, TrainingDivergedError
from pyro_groups.nn_replicated import (
    optimizer_state_slice,
    stack_modules,
    stack_optimizer_states,
    unstack_into,
)

__all__ = ["ReplicatedMIPenalty"]


def _settings(pen: MIPenalty) -> tuple[Any, ...]:
    hyper = {k: v for k, v in pen.optimizer.param_groups[0].items() if k != "params"}
    return (pen.estimator, pen.critic_steps, pen.ema_decay, pen.site, pen.name,
            type(pen.optimizer), sorted(hyper.items()))


def _pad_pairs(p: PairIndices, k: int) -> PairIndices:
    """Pairs of a ``[G, K_r]`` batch on the ``[G, K]`` grid (padded anchors point at
    themselves and are not eligible)."""
    g, w = p.mask.shape
    slots = torch.arange(k, device=p.mask.device)[None, :].expand(g, k)
    own = torch.arange(g, device=p.mask.device)[:, None].expand(g, k)

    def put(base: Tensor, part: Tensor) -> Tensor:
        out = base.clone()
        out[:, :w] = part
        return out

    return PairIndices(
        joint_slot=put(slots, p.joint_slot),
        marginal_group=put(own, p.marginal_group),
        marginal_slot=put(slots, p.marginal_slot),
        mask=put(torch.zeros_like(slots, dtype=torch.bool), p.mask),
        num_excluded_groups=p.num_excluded_groups,
    )


class ReplicatedMIPenalty(AdversarialPenalty):
    r"""``R'`` copies of an :class:`~pyro_groups.adversary.mi_penalty.MIPenalty` as one penalty
    ``pen(model, guide, batch, num_groups=N, guide_trace=t)`` on a stacked batch.

    :param solos: the copies' solo penalties (same estimator, critic architecture, critic steps,
        optimiser settings, moving-average decay, site and name; ``weight`` may differ).
    :param members: the replicate index of each copy in the stacked batch (default
        ``0 .. R'-1``).
    :ivar values: the last VAE step's penalties per copy ``[R']`` (detached).
    :ivar bounds: the last critic step's bounds per copy ``[R']``, or ``None`` if it was skipped.
    """

    member_index: Tensor
    weight: Tensor
    ema_state: Tensor

    def __init__(self, solos: Sequence[MIPenalty], members: Optional[Sequence[int]] = None):
        super().__init__()
        if not solos:
            raise ArgumentError("ReplicatedMIPenalty needs at least one penalty")
        for r, p in enumerate(solos):
            if type(p) is not MIPenalty:  # noqa: E721 (subclasses may change the game)
                raise ArgumentTypeError(
                    f"copy {r} is a {type(p).__name__}; ReplicatedMIPenalty stacks MIPenalty "
                    "modules (nemeth_penalty, set_penalty)"
                )
            if _settings(p) != _settings(solos[0]):
                raise ArgumentError(
                    f"copy {r}'s settings {_settings(p)[:5]} differ from copy 0's "
                    f"{_settings(solos[0])[:5]}; only the weight may differ"
                )
        first = solos[0]
        if first.estimator == "infonce":
            raise ArgumentError("ReplicatedMIPenalty supports the mine, dv and nwj estimators")
        members = list(range(len(solos))) if members is None else [int(m) for m in members]
        if len(members) != len(solos) or len(set(members)) != len(members):
            raise ArgumentError(
                f"members must be {len(solos)} distinct replicate indices, got {members}"
            )
        self.estimator, self.critic_steps = first.estimator, first.critic_steps
        self.ema_decay, self.site, self.name = first.ema_decay, first.site, first.name
        self.members = members
        self.register_buffer("member_index", torch.tensor(members, dtype=torch.long))
        self.critic = stack_modules([p.critic for p in solos])
        hyper = {k: v for k, v in first.optimizer.param_groups[0].items() if k != "params"}
        self.optimizer = type(first.optimizer)(self.critic.parameters(), **hyper)
        if any(p.optimizer.state for p in solos):
            self.optimizer.load_state_dict(
                stack_optimizer_states([p.optimizer.state_dict() for p in solos])
            )
        self.register_buffer("weight", torch.tensor([p.weight for p in solos]))
        emas = [cast(Tensor, p.ema_state) for p in solos]
        self.register_buffer("ema_state", torch.stack(emas).clone())
        self._solos = list(solos)
        self.values: Optional[Tensor] = None
        self.bounds: Optional[Tensor] = None
        self._prepared: Optional[tuple[Trace, Any, Tensor]] = None

    def extra_repr(self) -> str:
        return f"estimator={self.estimator!r}, members={self.members}"

    def _members(self, batch: GroupBatch) -> tuple[Tensor, Tensor]:
        """The members' ``x`` ``[R', G, K, x_dim]`` and ``mask`` ``[R', G, K]``."""
        mask = batch.mask
        if mask.dim() != 3:
            raise ArgumentError(
                f"ReplicatedMIPenalty needs a stacked batch, mask [R, G, K]; got "
                f"{tuple(mask.shape)}"
            )
        x = batch.x.flatten(3)
        if self.members != list(range(mask.shape[0])):
            x, mask = x.index_select(0, self.member_index), mask.index_select(0, self.member_index)
        return x, mask

    def _codes(self, guide: Callable, batch: GroupBatch, num_groups: Optional[int],
               trace: Optional[Trace]) -> Tensor:
        """The members' codes ``[R', G, K, v_dim]`` (off ``trace``, or drawn from the guide)."""
        v = cast(Tensor, guide_trace(guide, batch, num_groups, trace).nodes[self.site]["value"])
        v = v.reshape(*batch.mask.shape, -1)
        if self.members != list(range(batch.mask.shape[0])):
            v = v.index_select(0, self.member_index)
        return v

    def _usable(self, mask: Tensor) -> tuple[bool, list[int]]:
        """Whether every copy's batch can be paired (each solo penalty warns as it would alone),
        and the copies' widths."""
        cols = mask.any(-2)
        position = torch.arange(1, mask.shape[-1] + 1, device=mask.device)
        widths = torch.where(cols, position, torch.zeros_like(position)).amax(-1).tolist()
        flags = [p._usable(mask[i, :, :w]) for i, (p, w) in enumerate(zip(self._solos, widths))]
        if all(flags) or not any(flags):
            return all(flags), widths
        bad = [self.members[i] for i, f in enumerate(flags) if not f]
        raise ArgumentError(
            f"the batches of replicates {bad} have fewer than two groups with two or more "
            "observations while the others' do not; replicated penalties skip a batch for all "
            "copies or none (use a larger batch_size)"
        )

    def _pairs(self, mask: Tensor, widths: list[int]) -> PairIndices:
        parts = [
            _pad_pairs(sample_pairs(mask[i, :, :w], p._gen(mask.device)), mask.shape[-1])
            for i, (p, w) in enumerate(zip(self._solos, widths))
        ]
        return PairIndices(*(torch.stack(field) for field in zip(*parts)))

    def _scores(self, x: Tensor, mask: Tensor, v: Tensor, pairs: PairIndices,
                detach_critic: bool) -> Any:
        def fn(critic: torch.nn.Module, x: Tensor, mask: Tensor, v: Tensor) -> Any:
            return getattr(critic, "group_scores")(x, mask, v, pairs=pairs)

        if detach_critic:
            return detached_call(self.critic, fn, x, mask, v)
        return fn(self.critic, x, mask, v)

    def _bound(self, s: Any) -> Tensor:
        fn: Callable[..., Tensor] = nwj_bound if self.estimator == "nwj" else dv_bound
        return vmap(fn)(s.joint, s.marginal, s.mask, s.mask)

    def _critic_objective(self, x: Tensor, mask: Tensor, v: Tensor,
                          widths: list[int]) -> tuple[Tensor, Tensor]:
        """``(bounds, objectives)`` ``[R']`` with the live critic (fresh pairs); MINE updates
        its moving averages (as :meth:`MIPenalty._critic_objective`, per copy)."""
        s = self._scores(x, mask, v, self._pairs(mask, widths), False)
        if self.estimator != "mine":
            b = self._bound(s)
            return b, b
        res = vmap(mine_bound, in_dims=(0, 0, 0, None, 0, 0))(
            s.joint, s.marginal, self.ema_state, self.ema_decay, s.mask, s.mask
        )
        with torch.no_grad():
            self.ema_state.copy_(res.ema_state)
        return res.bound, res.surrogate

    def _diverged(self, e: TrainingDivergedError, values: Sequence[Optional[Tensor]]) -> None:
        """Re-raise ``e`` naming the replicates whose objective or gradients are NaN/inf."""
        bad = torch.zeros(len(self.members), dtype=torch.bool)
        for t in values:
            if t is not None:
                bad |= ~torch.isfinite(t.detach()).reshape(len(self.members), -1).all(1).cpu()
        names = [self.members[i] for i in torch.nonzero(bad).flatten().tolist()]
        raise TrainingDivergedError(f"{e} (replicates with a non-finite bound or gradient: "
                                    f"{names})") from e

    def forward(
        self,
        model: Callable,
        guide: Callable,
        batch: GroupBatch,
        *,
        num_groups: Optional[int] = None,
        guide_trace: Optional[Trace] = None,
    ) -> Tensor:
        """``sum_r weight_r * N * bound_r`` on the members' codes (with gradients).

        As :meth:`MIPenalty.forward`: with ``guide_trace`` the live critic scores the codes once
        and the critics' gradients are kept for the next :meth:`critic_step` (restrict the VAE's
        backward to the VAE's parameters); otherwise the critic is detached.
        """
        self._prepared = None
        x, mask = self._members(batch)
        usable, widths = self._usable(mask)
        if not usable:
            self.values = x.new_zeros(len(self.members))
            return x.new_zeros(())
        v = self._codes(guide, batch, num_groups, guide_trace)
        n = mask.shape[-2] if num_groups is None else int(num_groups)
        weight = self.weight.to(x.dtype) * n
        if guide_trace is None or self.critic_steps == 0 or not torch.is_grad_enabled():
            values = weight * self._bound(self._scores(x, mask, v, self._pairs(mask, widths), True))
            self.values = values.detach()
            return values.sum()
        value, objective = self._critic_objective(x, mask, v, widths)
        params = [p for g in self.optimizer.param_groups for p in g["params"]]
        grads = torch.autograd.grad(-objective.sum(), params, retain_graph=True,
                                    allow_unused=True)
        self._prepared = (guide_trace, grads, value.detach())
        values = weight * value
        self.values = values.detach()
        return values.sum()

    def critic_step(
        self,
        model: Callable,
        guide: Callable,
        batch: GroupBatch,
        *,
        num_groups: Optional[int] = None,
        guide_trace: Optional[Trace] = None,
    ) -> dict[str, Tensor]:
        """``critic_steps`` steps of every copy's critic on its detached codes, the first with
        the gradients :meth:`forward` kept for the same ``guide_trace`` (then pairs re-drawn at
        every step); returns ``{f"{name}_bound": bounds [R']}`` (``{}`` if skipped)."""
        prepared, self._prepared = self._prepared, None
        self.bounds = None
        if self.critic_steps == 0:
            return {}
        x, mask = self._members(batch)
        usable, widths = self._usable(mask)
        if not usable:
            return {}
        steps, value = self.critic_steps, None
        if prepared is not None and guide_trace is not None and prepared[0] is guide_trace:
            try:
                self.apply_gradients(prepared[1])
            except TrainingDivergedError as e:
                self._diverged(e, prepared[1])
            steps, value = steps - 1, prepared[2]
        if steps:
            with torch.no_grad():
                v = self._codes(guide, batch, num_groups, guide_trace).detach()
            for _ in range(steps):
                value, objective = self._critic_objective(x, mask, v, widths)
                try:
                    self.update(-objective.sum())
                except TrainingDivergedError as e:
                    self._diverged(e, [objective])
        assert value is not None
        self.bounds = value.detach()
        return {f"{self.name}_bound": self.bounds}

    def write_back(self) -> None:
        """Copy every copy's critic, optimiser state and moving average into its solo penalty."""
        state = self.optimizer.state_dict()
        with torch.no_grad():
            for i, p in enumerate(self._solos):
                unstack_into(self.critic, i, p.critic)
                cast(Tensor, p.ema_state).copy_(self.ema_state[i])
                p.optimizer.load_state_dict(optimizer_state_slice(state, i))

    def get_extra_state(self) -> Any:
        generators = [{"device": str(p.generator.device), "state": p.generator.get_state()}
                      for p in self._solos]
        return {**super().get_extra_state(), "generators": generators}

    def set_extra_state(self, state: Any) -> None:
        super().set_extra_state(state)
        for p, g in zip(self._solos, state["generators"]):
            p.generator = torch.Generator(torch.device(g["device"]))
            p.generator.set_state(g["state"])
