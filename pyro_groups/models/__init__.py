"""Generative models ``p``: the group VAE and its decoders."""
from pyro_groups.models.decoders import ExamScoresDecoder, MLPDecoder
from pyro_groups.models.group_vae import GroupVAE, group_plates

__all__ = ["ExamScoresDecoder", "GroupVAE", "MLPDecoder", "group_plates"]
