"""pyro_groups: group-instance disentanglement with Pyro."""
from pyro_groups.data import GroupBatch, GroupedData, exam_scores
from pyro_groups.guides import GroupGuide, UGVAEGuide, make_guide
from pyro_groups.models import UGVAE, ExamScoresDecoder, GroupVAE, MLPDecoder
from pyro_groups.training import History, fit, load_modules, save_modules

__version__ = "0.1.0"

__all__ = [
    "ExamScoresDecoder",
    "GroupBatch",
    "GroupGuide",
    "GroupVAE",
    "GroupedData",
    "History",
    "MLPDecoder",
    "UGVAE",
    "UGVAEGuide",
    "__version__",
    "exam_scores",
    "fit",
    "load_modules",
    "make_guide",
    "save_modules",
]
