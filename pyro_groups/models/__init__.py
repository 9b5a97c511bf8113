"""Generative models ``p``: the group VAE, its variants (paired, i.i.d., UG-VAE) and decoders."""
from pyro_groups.models.decoders import ExamScoresDecoder, MLPDecoder
from pyro_groups.models.group_vae import GroupVAE, group_plates
from pyro_groups.models.iid_vae import IIDVAE
from pyro_groups.models.paired import PairedVAE
from pyro_groups.models.ugvae import UGVAE, ClusterComponents

__all__ = [
    "ClusterComponents",
    "ExamScoresDecoder",
    "GroupVAE",
    "IIDVAE",
    "MLPDecoder",
    "PairedVAE",
    "UGVAE",
    "group_plates",
]
