"""Grouped data: padded batches with masks, data sets, samplers, embedded and procedural data sets,
and loaders for real local files."""
from pyro_groups.data.batch import GroupBatch, GroupDataError, check_group_inputs, zero_padding
from pyro_groups.data.dataset import GroupedData, pad_groups
from pyro_groups.data.digits import LabelledImages, digits
from pyro_groups.data.exam_scores import exam_scores, exam_scores_mean
from pyro_groups.data.factors import (
    FactorDataset,
    FactorPairs,
    group_by_factors,
    pairs_sharing,
    poisson_sizes,
    random_groups,
)
from pyro_groups.data.pairs import pair_indices, pairs_from_factors, sample_pairs
from pyro_groups.data.loaders import DataFileError, load_dsprites, load_mnist, load_shapes3d
from pyro_groups.data.samplers import DistributedGroupSampler
from pyro_groups.data.shapes3d import Shapes3D
from pyro_groups.data.sprites import Sprites

__all__ = [
    "DataFileError",
    "DistributedGroupSampler",
    "FactorDataset",
    "FactorPairs",
    "GroupBatch",
    "GroupDataError",
    "GroupedData",
    "LabelledImages",
    "Shapes3D",
    "Sprites",
    "check_group_inputs",
    "digits",
    "exam_scores",
    "exam_scores_mean",
    "group_by_factors",
    "load_dsprites",
    "load_mnist",
    "load_shapes3d",
    "pad_groups",
    "pair_indices",
    "pairs_from_factors",
    "sample_pairs",
    "pairs_sharing",
    "poisson_sizes",
    "random_groups",
    "zero_padding",
]
