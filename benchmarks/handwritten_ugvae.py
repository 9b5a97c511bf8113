r"""UG-VAE's eqs. 10-11 written in plain PyTorch, and a side-by-side step timing against Pyro.

The same model and guide as ``UGVAE(MLPDecoder(u, v, x_dim, hidden)) +
UGVAEGuide(x_dim, u, v, C, hidden=hidden, cluster_hidden=hidden)``, without Pyro:

- :math:`q(z_i \mid x_i)`: an MLP of :math:`x_i` to :math:`(\mu, \operatorname{softplus}(r) +
  10^{-4})`; :math:`q(d_i \mid z_i)`: softmax of an MLP of :math:`z_i`;
- :math:`q(\beta \mid X, Z)`: per-observation normals from an MLP of
  :math:`[x_i, \pi(z_i)]`, multiplied over the valid observations (eq. 9);
- :math:`p(z_i \mid d, \beta)`: :math:`C` component MLPs as batched weights ``[C, in, out]``;
  :math:`p(x_i \mid z_i, \beta)`: normal, MLP mean of :math:`[\beta, z_i]`, learned scale;
- the loss is the negative of eqs. 10-11: one reparameterised draw of :math:`z` and
  :math:`\beta` (in Pyro's order: ``z`` then ``beta``), the sums over :math:`d` exact, padded slots
  masked, every term scaled by :math:`N / G`.

:func:`ugvae_step_ratio` times optimisation steps (loss, backward, Adam) of this module and of the
library (``TraceEnum_ELBO(max_plate_nesting=2).differentiable_loss``, as ``pyro_groups.fit``
does; with Pyro's validation off and on) on the same batches, paired and in rotating order, and
returns the median steps per second and the median paired time ratio.
"""
from __future__ import annotations

import math
import statistics
import time
from typing import Callable, Optional, Sequence

import pyro
import torch
from torch import Tensor, nn
from torch.nn.functional import softplus

from handwritten_cxvae import MIN_SCALE, mlp, normal_log_prob


class HandwrittenUGVAE(nn.Module):
    """UG-VAE's networks and the negative of eqs. 10-11, in plain PyTorch."""

    def __init__(self, x_dim: int, u_dim: int, v_dim: int, num_clusters: int,
                 hidden: Sequence[int] = (128,)) -> None:
        super().__init__()
        self.u_dim, self.v_dim, self.num_clusters = u_dim, v_dim, num_clusters
        self.z_encoder = mlp(x_dim, hidden, 2 * v_dim)
        self.cluster = mlp(v_dim, hidden, num_clusters)
        self.beta_encoder = mlp(x_dim + num_clusters, hidden, 2 * u_dim)
        widths = [u_dim, *hidden, 2 * v_dim]
        self.comp_w = nn.ParameterList(
            nn.Parameter(torch.zeros(num_clusters, a, b)) for a, b in zip(widths, widths[1:])
        )
        self.comp_b = nn.ParameterList(
            nn.Parameter(torch.zeros(num_clusters, b)) for b in widths[1:]
        )
        self.decoder = mlp(u_dim + v_dim, hidden, x_dim)
        self.raw_scale = nn.Parameter(torch.zeros(x_dim))

    @classmethod
    def from_library(cls, model: nn.Module, guide: nn.Module) -> "HandwrittenUGVAE":
        """A copy with the weights of a ``UGVAE(MLPDecoder(...))`` / ``UGVAEGuide`` pair (MLP
        bodies, the same ``hidden`` everywhere)."""
        enc = guide.instance_encoder.net
        hidden = [m.out_features for m in enc if isinstance(m, nn.Linear)][:-1]
        out = cls(enc[0].in_features, model.u_dim, model.v_dim, model.num_clusters, hidden)
        out.z_encoder.load_state_dict(enc.state_dict())
        out.cluster.load_state_dict(guide.cluster_net.state_dict())
        out.beta_encoder.load_state_dict(guide.group_net.state_dict())
        out.decoder.load_state_dict(model.decoder.net.state_dict())
        with torch.no_grad():
            out.raw_scale.copy_(model.decoder.raw_scale)
            net = model.components.net
            for i in range(net.num_layers):
                out.comp_w[i].copy_(getattr(net, f"weight{i}"))
                out.comp_b[i].copy_(getattr(net, f"bias{i}"))
        return out

    def z_posterior(self, x: Tensor) -> tuple[Tensor, Tensor]:
        loc, raw = self.z_encoder(x).chunk(2, -1)
        return loc, softplus(raw) + MIN_SCALE

    def beta_posterior(self, x: Tensor, mask: Tensor, pi: Tensor) -> tuple[Tensor, Tensor]:
        loc, raw = self.beta_encoder(torch.cat([x, pi], -1)).chunk(2, -1)
        precision = (softplus(raw) + MIN_SCALE).pow(-2) * mask.unsqueeze(-1).to(x.dtype)
        total = precision.sum(-2, keepdim=True)
        return (precision * loc).sum(-2, keepdim=True) / total, total.rsqrt()

    def components(self, beta: Tensor) -> tuple[Tensor, Tensor]:
        h = torch.einsum("...i,cio->...co", beta, self.comp_w[0]) + self.comp_b[0]
        for w, b in zip(list(self.comp_w)[1:], list(self.comp_b)[1:]):
            h = torch.einsum("...ci,cio->...co", h.relu(), w) + b
        loc, raw = h.chunk(2, -1)
        return loc, softplus(raw) + MIN_SCALE

    def loss(self, x: Tensor, mask: Tensor, num_groups: Optional[int] = None,
             noise: Optional[tuple[Tensor, Tensor]] = None) -> Tensor:
        """The negative of eqs. 10-11 for ``x`` ``[G, K, x_dim]``, scaled by ``N / G``.

        :param noise: optional standard-normal draws ``(eps_z [G, K, v_dim], eps_beta
            [G, 1, u_dim])``; drawn from the global RNG (``z`` first) when not given.
        """
        scale = 1.0 if num_groups is None else num_groups / mask.shape[0]
        w = mask.to(x.dtype)
        x = x * w.unsqueeze(-1)
        z_loc, z_scale = self.z_posterior(x)
        eps_z = noise[0] if noise is not None else torch.empty_like(z_loc).normal_()
        z = z_loc + eps_z * z_scale
        log_qd = self.cluster(z).log_softmax(-1)  # [G, K, C]
        q_d = log_qd.exp()
        b_loc, b_scale = self.beta_posterior(x, mask, q_d)
        eps_b = noise[1] if noise is not None else torch.empty_like(b_loc).normal_()
        beta = b_loc + eps_b * b_scale  # [G, 1, u]
        c_loc, c_scale = self.components(beta)  # [G, 1, C, v]
        log_pz = normal_log_prob(z.unsqueeze(-2), c_loc, c_scale).sum(-1)  # [G, K, C]
        log_qz = normal_log_prob(z, z_loc, z_scale).sum(-1)  # [G, K]
        x_loc = self.decoder(torch.cat([beta.expand(*z.shape[:-1], -1), z], -1))
        log_px = normal_log_prob(x, x_loc, softplus(self.raw_scale) + MIN_SCALE).sum(-1)
        kl_z = (q_d * (log_qz.unsqueeze(-1) - log_pz)).sum(-1)
        kl_d = (q_d * (log_qd + math.log(self.num_clusters))).sum(-1)
        local = ((log_px - kl_z - kl_d) * w).sum(-1)  # [G]
        log_pb = normal_log_prob(beta, torch.zeros(()), torch.ones(())).sum((-2, -1))
        log_qb = normal_log_prob(beta, b_loc, b_scale).sum((-2, -1))
        return -scale * (local + log_pb - log_qb).sum()


Step = Callable[[Tensor, Tensor], float]


def _steps(x_dim: int, u_dim: int, v_dim: int, num_clusters: int, hidden: Sequence[int],
           num_groups: int, lr: float) -> dict[str, Step]:
    from pyro.infer import TraceEnum_ELBO

    from pyro_groups.guides import UGVAEGuide
    from pyro_groups.models import UGVAE, MLPDecoder

    model = UGVAE(MLPDecoder(u_dim, v_dim, x_dim, hidden), num_clusters, hidden=hidden)
    guide = UGVAEGuide(x_dim, u_dim, v_dim, num_clusters, hidden=hidden, cluster_hidden=hidden)
    hand = HandwrittenUGVAE.from_library(model, guide)
    elbo = TraceEnum_ELBO(max_plate_nesting=2)
    params = list({id(p): p for m in (model, guide) for p in m.parameters()}.values())
    opts = {"handwritten": torch.optim.Adam(hand.parameters(), lr=lr),
            "library": torch.optim.Adam(params, lr=lr)}

    def make(variant: str) -> Step:
        validate = variant == "pyro_traceenum_validated"
        opt = opts["handwritten" if variant == "handwritten" else "library"]

        def step(x: Tensor, mask: Tensor) -> float:
            if variant == "handwritten":
                loss = hand.loss(x, mask, num_groups)
            else:
                pyro.enable_validation(validate)
                loss = elbo.differentiable_loss(model, guide, x, mask, num_groups=num_groups)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            return float(loss.detach())

        return step

    return {v: make(v) for v in ("handwritten", "pyro_traceenum", "pyro_traceenum_validated")}


def ugvae_step_ratio(
    batch_size: int = 128,
    groups: int = 1,
    *,
    x_dim: int = 64,
    u_dim: int = 8,
    v_dim: int = 8,
    num_clusters: int = 10,
    hidden: Sequence[int] = (128,),
    num_groups: int = 1024,
    steps: int = 20,
    repeats: int = 7,
    warmup: int = 3,
    lr: float = 1e-3,
    seed: int = 0,
) -> dict:
    """Steps per second of the hand-written and the library's UG-VAE step on the same batches of
    ``groups`` groups of ``batch_size`` observations (digits-sized vectors, ``x_dim`` = 64).

    Every repeat runs each variant for ``steps`` steps in a rotating order (so a changing machine
    load hits all alike); the result holds the median steps per second over repeats and the median
    paired ratio ``library seconds per step / hand-written seconds per step``.
    """
    pyro.set_rng_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    batches = [(torch.rand(groups, batch_size, x_dim, generator=gen),
                torch.ones(groups, batch_size, dtype=torch.bool)) for _ in range(4)]
    fns = _steps(x_dim, u_dim, v_dim, num_clusters, hidden, num_groups, lr)
    variants = list(fns)
    for fn in fns.values():
        for i in range(warmup):
            fn(*batches[i % len(batches)])
    rates: dict[str, list[float]] = {v: [] for v in variants}
    for r in range(repeats):
        for v in variants[r % len(variants):] + variants[: r % len(variants)]:
            t0 = time.perf_counter()
            for i in range(steps):
                fns[v](*batches[(r + i) % len(batches)])
            rates[v].append(steps / (time.perf_counter() - t0))
    pyro.enable_validation(True)
    hand = rates["handwritten"]
    return {
        "batch_size": batch_size,
        "groups": groups,
        "config": {"x_dim": x_dim, "u_dim": u_dim, "v_dim": v_dim, "num_clusters": num_clusters,
                   "hidden": list(hidden), "steps": steps, "repeats": repeats,
                   "threads": torch.get_num_threads()},
        "steps_per_second": {v: statistics.median(rs) for v, rs in rates.items()},
        "time_ratio_vs_handwritten": {
            v: statistics.median(h / lib for h, lib in zip(hand, rates[v]))
            for v in variants if v != "handwritten"
        },
        "steps_per_second_repeats": rates,
    }


if __name__ == "__main__":
    import json

    torch.set_num_threads(1)
    print(json.dumps(ugvae_step_ratio(), indent=1))
