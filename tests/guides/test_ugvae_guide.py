"""UGVAEGuide: sites and enumeration, q(beta | X, Z) as a product of normals, padding, options."""
import pytest
import torch
from pyro import poutine
from pyro.poutine.util import prune_subsample_sites
from torch.testing import assert_close

from pyro_groups.guides import UGVAEGuide, product_of_normals
from pyro_groups.guides.encoders import normal_params
from pyro_groups.nn_conv import conv_body

X, U, V, C = 4, 2, 3, 5


def data(g=3, k=4):
    x = torch.randn(g, k, X)
    mask = torch.arange(k) < torch.tensor([k, 2, 1])[:g, None]
    return x.masked_fill(~mask.unsqueeze(-1), 0.0), mask


def test_sites_shapes_and_enumeration():
    guide = UGVAEGuide(X, U, V, C, hidden=(8,))
    x, mask = data()
    tr = poutine.trace(poutine.enum(guide, first_available_dim=-3)).get_trace(x, mask)
    assert prune_subsample_sites(tr).stochastic_nodes == ["v", "u", "d"]
    assert tr.nodes["v"]["value"].shape == (3, 4, V)
    assert tr.nodes["u"]["value"].shape == (3, 1, U)
    assert tr.nodes["d"]["value"].shape == (C, 1, 1)  # enumerated, never sampled
    assert tr.nodes["d"]["infer"]["_enumerate_dim"] == -3
    assert {f.name for f in tr.nodes["u"]["cond_indep_stack"]} == {"groups"}
    assert {f.name for f in tr.nodes["d"]["cond_indep_stack"]} == {"groups", "instances"}
    tr.compute_log_prob()
    assert (tr.nodes["d"]["log_prob"][:, ~mask] == 0).all()
    assert (tr.nodes["v"]["log_prob"][~mask] == 0).all()
    plain = poutine.trace(UGVAEGuide(X, U, V, C, enumerate_in="model")).get_trace(x, mask)
    assert "d" not in plain.nodes


def test_group_posterior_is_the_product_of_per_observation_normals_of_x_and_pi():
    guide = UGVAEGuide(X, U, V, C, hidden=(8,))
    x, mask = data()
    z = torch.randn(3, 4, V)
    pi = guide.cluster_posterior(z).probs
    assert_close(pi.sum(-1), torch.ones(3, 4))
    loc_i, scale_i = normal_params(guide.group_net(torch.cat([x, pi], -1)))
    loc, scale = product_of_normals(loc_i, scale_i, mask)
    q = guide.group_posterior(x, mask, z)
    assert q.batch_shape == (3, 1) and q.event_shape == (U,)
    assert_close(q.base_dist.loc, loc)
    assert_close(q.base_dist.scale, scale)
    # eq. 9 for the group with one observation: its own normal
    assert_close(q.base_dist.loc[2, 0], loc_i[2, 0])
    # the default codes are the means of q(z | x)
    default = guide.group_posterior(x, mask)
    mean_z = guide.instance_posterior(x).mean
    assert_close(default.mean, guide.group_posterior(x, mask, mean_z).mean)


def test_group_posterior_ignores_order_and_padding():
    guide = UGVAEGuide(X, U, V, C, hidden=(8,))
    x, mask = data()
    z = torch.randn(3, 4, V)
    q = guide.group_posterior(x, mask, z)
    perm = torch.tensor([1, 0, 3, 2])
    full = mask.all(-1)
    q_perm = guide.group_posterior(x[:, perm], mask[:, perm], z[:, perm])
    assert_close(q_perm.mean[full], q.mean[full])
    garbage_x = x.masked_fill(~mask.unsqueeze(-1), 1e3)
    garbage_z = z.masked_fill(~mask.unsqueeze(-1), -1e3)
    assert_close(guide.group_posterior(garbage_x, mask, garbage_z).mean, q.mean)


def test_more_observations_sharpen_q_beta():
    guide = UGVAEGuide(X, U, V, C, hidden=(8,))
    x = torch.randn(1, 8, X)
    z = torch.randn(1, 8, V)
    few = guide.group_posterior(x[:, :2], torch.ones(1, 2, dtype=torch.bool), z[:, :2])
    many = guide.group_posterior(x, torch.ones(1, 8, dtype=torch.bool), z)
    assert (many.base_dist.scale < few.base_dist.scale).all()


def test_instance_posterior_ignores_the_group_code():
    guide = UGVAEGuide(X, U, V, C)
    x, _ = data()
    assert_close(guide.instance_posterior(x).mean, guide.instance_posterior(x, torch.ones(U)).mean)


def test_conv_body_and_bad_options():
    guide = UGVAEGuide(32, U, V, C, hidden=(), body=conv_body(1, 8, out_dim=32))
    assert guide.instance_encoder.body is not guide.group_body  # one body per encoder
    x = torch.rand(2, 3, 1, 8, 8)
    u, v = guide(x, torch.ones(2, 3, dtype=torch.bool))
    assert u.shape == (2, 1, U) and v.shape == (2, 3, V)
    with pytest.raises(ValueError, match="enumerate_in must be one of"):
        UGVAEGuide(X, U, V, C, enumerate_in="both")
    with pytest.raises(ValueError, match="cluster network takes v_dim=3"):
        UGVAEGuide(X, U, V, C).cluster_posterior(torch.zeros(2, 4))
