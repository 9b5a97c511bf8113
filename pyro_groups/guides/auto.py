r"""Pyro's autoguides (``AutoNormal``, ``AutoDelta``, ...) on the library's group models.

An autoguide keeps *local* parameters for every group of the data set (and every slot of a
group). Two things make it pair them with the right data:

- the ``"groups"`` plate's subsample must be the minibatch's indices in the data set
  (``group_index``, :attr:`~pyro_groups.data.GroupBatch.index`), in the model *and* in the guide
  (an autoguide otherwise draws its own random subsample);
- every batch must have the same instance width ``K`` (pad to the data set's largest group:
  ``data.batches(..., pad=True)``), and padded slots must leave ``log q`` as the model leaves them
  out of ``log p``; unmasked, their entropy would grow without bound.

:class:`GroupAutoGuide` does both around any autoguide class:

.. code-block:: python

    guide = GroupAutoGuide(AutoNormal, model)
    svi = SVI(model, guide, pyro.optim.Adam({"lr": 0.01}), Trace_ELBO())
    for batch in data.batches(64, pad=True):
        svi.step(batch.x, batch.mask, num_groups=len(data), group_index=batch.index)

``fit`` does the padding and passes the indices itself.
"""
from __future__ import annotations

from typing import Any, Optional

import pyro
import torch
from pyro.infer.autoguide import AutoContinuous, AutoGuide
from pyro.nn import PyroModule
from pyro.poutine.messenger import Messenger

from pyro_groups._naming import unique_name
from pyro_groups.models.group_vae import group_plates

__all__ = ["GroupAutoGuide"]


class _MaskInstances(Messenger):
    """Mask every sample site inside the ``"instances"`` plate with the batch's mask."""

    def __init__(self, mask: torch.Tensor) -> None:
        super().__init__()
        self.mask = mask

    def _process_message(self, msg: dict[str, Any]) -> None:
        if msg["type"] != "sample" or msg["is_observed"]:
            return
        if any(f.name == "instances" for f in msg["cond_indep_stack"]):
            msg["mask"] = self.mask if msg["mask"] is None else msg["mask"] & self.mask


def _create_plates(
    x: Optional[torch.Tensor],
    mask: torch.Tensor,
    *,
    num_groups: Optional[int] = None,
    group_index: Optional[torch.Tensor] = None,
) -> list[pyro.plate]:
    return list(group_plates(mask, num_groups, group_index))


class GroupAutoGuide(PyroModule):
    """``autoguide_class(model, create_plates=...)`` with the model's call signature
    ``(x, mask, *, num_groups=None, group_index=None)``, the groups plate subsampled at
    ``group_index`` and padded slots masked.

    :param autoguide_class: a Pyro autoguide class. ``AutoNormal`` and ``AutoDelta`` keep local
        latents per group and train on minibatches; the ``AutoContinuous`` family
        (``AutoDiagonalNormal``, ``AutoMultivariateNormal``, ...) flattens all latents into one
        vector and supports no subsampling, so it needs every group in every batch.
    :param model: the group model.
    :param kwargs: passed to the autoguide (``init_scale``, ``init_loc_fn``, ...).
    """

    def __init__(self, autoguide_class: type[AutoGuide], model: Any, name: Optional[str] = None,
                 **kwargs: Any) -> None:
        super().__init__(unique_name("autoguide", name))
        if not (isinstance(autoguide_class, type) and issubclass(autoguide_class, AutoGuide)):
            raise TypeError(
                f"autoguide_class must be a Pyro AutoGuide class, got {autoguide_class!r}"
            )
        self.subsamples = not issubclass(autoguide_class, AutoContinuous)
        if self.subsamples:
            kwargs["create_plates"] = _create_plates
        self.auto = autoguide_class(model, **kwargs)

    def forward(
        self,
        x: Optional[torch.Tensor],
        mask: torch.Tensor,
        *,
        num_groups: Optional[int] = None,
        group_index: Optional[torch.Tensor] = None,
    ) -> dict[str, torch.Tensor]:
        if not self.subsamples and num_groups is not None and num_groups > mask.shape[0]:
            raise ValueError(
                f"{type(self.auto).__name__} has one joint posterior over every group and cannot "
                f"train on a minibatch ({mask.shape[0]} of {num_groups} groups): use "
                "batch_size >= the number of groups, or AutoNormal / AutoDelta"
            )
        with _MaskInstances(mask):
            return self.auto(x, mask, num_groups=num_groups, group_index=group_index)
