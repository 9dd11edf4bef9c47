"""The shared one-cycle schedule runs for any number of steps (OneCycleLR divided by zero at 10 steps)."""

import math

import pytest
import torch

from models.optim import one_cycle


@pytest.mark.parametrize("pct_start", [0.1, 0.15, 0.3])
def test_every_step_count_runs_with_finite_positive_rates(pct_start):
    for steps in range(1, 81):
        p = torch.nn.Parameter(torch.zeros(1))
        opt = torch.optim.Adam([p], lr=1e-3)
        sched = one_cycle(opt, 1e-3, steps, pct_start)
        rates = []
        for _ in range(steps):
            opt.step()
            sched.step()
            rates.append(opt.param_groups[0]["lr"])
        assert all(math.isfinite(r) and r > 0 for r in rates), (steps, rates)
        assert max(rates) <= 1e-3 * (1 + 1e-9)


def test_long_runs_keep_the_requested_warmup():
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.Adam([p], lr=1e-3)
    sched = one_cycle(opt, 1e-3, 200, 0.1)
    rates = []
    for _ in range(200):
        rates.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert int(max(range(200), key=rates.__getitem__)) in (19, 20)
