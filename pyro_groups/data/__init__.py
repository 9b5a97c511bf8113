"""Grouped data: padded batches with masks, data sets, samplers and embedded data sets."""
from pyro_groups.data.batch import GroupBatch, GroupDataError, check_group_inputs
from pyro_groups.data.dataset import GroupedData, pad_groups
from pyro_groups.data.exam_scores import exam_scores, exam_scores_mean

__all__ = [
    "GroupBatch",
    "GroupDataError",
    "GroupedData",
    "check_group_inputs",
    "exam_scores",
    "exam_scores_mean",
    "pad_groups",
]
