"""The Exam-Scores runs trained as replicates: jobs of same-architecture rows, and the same
records as the solo runs."""
import pytest
from torch.testing import assert_close

from pyro_groups.experiments.exam_scores import (
    ROWS,
    Config,
    paper_config,
    plan_jobs,
    run_one,
    run_replicated,
)


@pytest.mark.parametrize("cfg", [Config(), paper_config(), Config(replicas=1),
                                 Config(rows=("gvae", "cxvae"), seeds=5, replicas=2)])
def test_jobs_cover_every_run_once_and_share_the_guide_architecture(cfg):
    jobs = plan_jobs(cfg)
    runs = [run for job in jobs for run in job]
    assert sorted(runs) == sorted((n, s) for n in cfg.rows for s in range(cfg.seeds))
    for job in jobs:
        assert 1 <= len(job) <= cfg.replicas
        assert len({(ROWS[n].group, ROWS[n].instance) for n, _ in job}) == 1
    if cfg.replicas == 7 and cfg.seeds == 7:
        assert sorted(len(j) for j in jobs) == [7] * 9  # 63 runs in 9 jobs


def test_replicated_records_equal_the_solo_runs():
    cfg = Config(groups=300, holdout=60, epochs=1, seeds=2, batch_size=80, hidden=(16,),
                 rows=("cxvae", "cxvae-reg-none"), extra={"probe": {"steps": 4, "draws": 1}})
    runs = [("cxvae", 0), ("cxvae-reg-none", 1)]
    replicated = run_replicated(runs, cfg)
    for (name, seed), rec in zip(runs, replicated):
        solo = run_one(name, seed, cfg)
        assert (rec["model"], rec["seed"]) == (name, seed)
        for a, b in zip(solo["history"], rec["history"]):
            for k in a:
                if k != "seconds":
                    assert_close(b[k], a[k], rtol=1e-4, atol=1e-5, msg=k)
        assert_close(rec["translation"]["translated"], solo["translation"]["translated"],
                     rtol=1e-4, atol=1e-5)
