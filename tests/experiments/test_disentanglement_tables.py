"""The README tables of the Locatello study: known analyses in, the expected cells out."""
import itertools

from pyro_groups.experiments import disentanglement_analysis as an
from pyro_groups.experiments import disentanglement_tables as tables


def _runs() -> list[dict]:
    # mig rises with the objective index; dci with the seed only; modularity ranks like mig.
    runs = []
    objectives = enumerate(("beta_vae", "factor_vae", "dip_vae_i"))
    for (i, obj), value, seed in itertools.product(objectives, (1.0, 2.0), range(4)):
        runs.append({"model": obj, "value": value, "seed": seed, "metrics": {
            "mig": 10.0 * i + 0.1 * seed, "dci_disentanglement": float(seed),
            "modularity": 10.0 * i + 0.1 * seed + 0.01 * value}})
    return runs


def test_variance_table_gives_the_objectives_share_and_the_papers():
    table = tables.format_variance_rst(an.variance_explained(_runs(), ["mig"], num_permutations=9))
    row = table.splitlines()[3]
    assert row.startswith("MIG") and "100 % (p 0.10)" in row and row.endswith("26 % / 72 %")


def test_agreement_matrix_is_symmetric_and_starred_beyond_noise():
    metrics = ["mig", "dci_disentanglement", "modularity"]
    runs = _runs()
    pairs = [{"a": a, "b": b, **an.rank_correlation(an._column(runs, a), an._column(runs, b))}
             for i, a in enumerate(metrics) for b in metrics[i + 1:]]
    table = tables.format_agreement_rst(pairs, metrics)
    rows = [line.split() for line in table.splitlines()[3:-1]]
    cells = {r[0]: r[1:] for r in rows}
    assert cells["MIG"][2] == cells["Modul."][0] == "1.00*"
    assert cells["MIG"][0] == "1" and not cells["MIG"][1].endswith("*")
    assert cells["DCI"][0] == cells["MIG"][1]


def test_selection_and_downstream_tables_carry_intervals_and_means():
    pooled = {"rho": -0.41, "low": -0.66, "high": -0.08, "beyond_noise": True}
    sel = tables.format_selection_rst([{"score": "tc_sampled", "target": "dci_disentanglement",
                                        "pooled": pooled, "within_objective_mean_rho": -0.38,
                                        "top_half_rate": 1 / 6}])
    assert "tc_sampled         DCI  -0.41 [-0.66, -0.08] *  -0.38  0.17".split() == \
        sel.splitlines()[3].split()
    stat = {"mean": 0.25, "std": 0.01, "n": 3}
    row = {"model": "gvae", **{k: stat for k in tables.DOWNSTREAM}}
    down = tables.format_downstream_rst([row])
    assert down.splitlines()[3].split()[:4] == ["GVAE", "0.250", "±", "0.010"]
    tc = tables.format_tc_rst([{"model": "beta_vae", "weak": 1.0, "strong": 4.0,
                                **{k: stat for k in ("tc_sampled_weak", "tc_sampled_strong",
                                                     "tc_mean_weak", "tc_mean_strong")}}])
    assert tc.splitlines()[3].split()[:4] == ["beta-VAE", "1", "->", "4"]
