"""Scanpath training loss: negative log-likelihood of each human fixation under its slot's prediction
(mixture of Gaussians over x, y in normalised model coordinates; Gaussian over log-duration), an optional L1
on the x, y means, and binary cross-entropy on the stop head."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


def gaussian_nll(value: torch.Tensor, mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Elementwise ``-log N(value; mean, exp(logvar))`` (nats)."""
    return 0.5 * (logvar + (value - mean) ** 2 * torch.exp(-logvar)) + HALF_LOG_2PI


def mixture_nll_xy(xy: torch.Tensor, mix_logit: torch.Tensor, mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """``-log sum_m pi_m N(xy; mean_m, diag exp(logvar_m))`` per slot.

    Shapes: ``xy`` (N, K, 2); ``mix_logit`` (N, K, M); ``mean``, ``logvar`` (N, K, M, 2) -> (N, K)."""
    component = -gaussian_nll(xy[:, :, None, :], mean, logvar).sum(-1)  # (N, K, M) log N
    return -torch.logsumexp(torch.log_softmax(mix_logit, -1) + component, dim=-1)


def scanpath_loss(out: dict[str, torch.Tensor], targets: torch.Tensor, lengths: torch.Tensor, *, l1_weight: float = 0.0,
                  stop_weight: float = 1.0, duration_weight: float = 1.0,
                  stop_all_slots: bool = False) -> dict[str, torch.Tensor]:
    """Loss of one batch.

    Args:
        out: :class:`~models.scanpath.network.ScanpathNet` outputs (N paths, K slots, M components).
        targets: (N, K, 3) x, y (0..1) and log-duration (log s); slots ``>= lengths`` are padding.
        lengths: (N,) number of real fixations (1..K).
        l1_weight: weight of the L1 distance from the target to the *nearest* component mean (MedGaze
            trained with L1 only; nearest, so the term does not pull components together).
        stop_weight, duration_weight: weights of the stop BCE and of the duration NLL.
        stop_all_slots: train the stop head on every slot (parallel decoding, where it is the marginal
            P(slot is padding)); otherwise on the real slots and the first padding slot (autoregressive
            decoding, where it is P(path ends here | path so far) and later padding slots follow a path that
            has already ended).

    Returns:
        ``{"loss", "nll_xy", "nll_duration", "l1", "stop"}``; each term is a mean over the slots it covers.
    """
    k = targets.shape[1]
    slot = torch.arange(k, device=targets.device)[None]  # (1, K)
    valid = (slot < lengths[:, None]).float()  # (N, K)
    stop_mask = torch.ones_like(valid) if stop_all_slots else (slot <= lengths[:, None]).float()
    n_valid = valid.sum().clamp_min(1.0)

    xy = targets[..., :2]
    nll_xy = (mixture_nll_xy(xy, out["mix_logit"], out["mean_xy"], out["logvar_xy"]) * valid).sum() / n_valid
    nll_dur = (gaussian_nll(targets[..., 2], out["mean_dur"], out["logvar_dur"]) * valid).sum() / n_valid
    l1 = ((xy[:, :, None] - out["mean_xy"]).abs().sum(-1).min(-1).values * valid).sum() / n_valid
    stop_target = 1.0 - valid
    stop = (F.binary_cross_entropy_with_logits(out["stop_logit"], stop_target, reduction="none") * stop_mask).sum() / stop_mask.sum().clamp_min(1.0)
    loss = nll_xy + duration_weight * nll_dur + l1_weight * l1 + stop_weight * stop
    return {"loss": loss, "nll_xy": nll_xy.detach(), "nll_duration": nll_dur.detach(), "l1": l1.detach(), "stop": stop.detach()}
