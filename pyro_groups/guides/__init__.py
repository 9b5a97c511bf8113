"""Guides ``q``: group aggregators, encoders, and their composition into swappable guides."""
from pyro_groups.guides.aggregators import average_of_normals, product_of_normals
from pyro_groups.guides.auto import GroupAutoGuide
from pyro_groups.guides.encoders import (
    DeepSetsGroupEncoder,
    InstanceEncoder,
    PerObservationGroupEncoder,
)
from pyro_groups.guides.group_guide import (
    PRESETS,
    GroupGuide,
    content_samples,
    make_guide,
    preset_guide,
)
from pyro_groups.guides.iid_guide import IIDGuide
from pyro_groups.guides.mixture import UniformMixtureOfNormals
from pyro_groups.guides.non_amortised import NonAmortisedGuide
from pyro_groups.guides.paired import PairedGuide, pair_guide
from pyro_groups.guides.ugvae_guide import UGVAEGuide

__all__ = [
    "PRESETS",
    "DeepSetsGroupEncoder",
    "GroupAutoGuide",
    "GroupGuide",
    "IIDGuide",
    "PairedGuide",
    "UGVAEGuide",
    "InstanceEncoder",
    "NonAmortisedGuide",
    "PerObservationGroupEncoder",
    "UniformMixtureOfNormals",
    "average_of_normals",
    "content_samples",
    "make_guide",
    "pair_guide",
    "preset_guide",
    "product_of_normals",
]
