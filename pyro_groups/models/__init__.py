"""Generative models ``p``: the group VAE and its decoders."""
from pyro_groups.models.decoders import ExamScoresDecoder, MLPDecoder
from pyro_groups.models.group_vae import GroupVAE, group_plates
from pyro_groups.models.iid_vae import IIDVAE
from pyro_groups.models.paired import PairedVAE

__all__ = ["ExamScoresDecoder", "GroupVAE", "IIDVAE", "MLPDecoder", "PairedVAE", "group_plates"]
