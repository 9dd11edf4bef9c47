"""Scanpath network: a small CNN turns the image into memory tokens; a transformer decoder over ``slots``
fixation slots predicts, per slot, a Gaussian over x, y (normalised model coordinates, 0..1 across the
letterboxed square) and over log-duration (log seconds), plus a stop logit (the slot is past the end).

The x, y head is a mixture of ``mixtures`` Gaussians (1 = the single Gaussian of MedGaze/Gazeformer).
Readers differ in search order, so after a few fixations the next one is often "left lung or right lung":
one Gaussian puts its mean between them, on the mediastinum, and a mean path decoded from such means drifts
down the midline. With a mixture the mean path follows the most probable component instead. Each
component's mean *points* into the image: a softmax over the image tokens gives a weighted token centre,
plus a bounded offset, so a fixation on a finding is one attention peak away.

Two decodings share every weight shape (``ScanpathConfig.decoding``):

- ``"autoregressive"`` (default): slot ``i`` reads the fixation of slot ``i-1`` (teacher-forced in
  training; the image centre before the first slot, the "start at the centre" convention of MedGaze) under a
  causal mask. Each sampled fixation conditions the next, so samples are distinct, coherent paths. Its
  greedy mean path suffers exposure bias (fed its own smooth means it moves in small steps), so sampled
  paths score better than the mean path.
- ``"parallel"`` (Gazeformer/MedGaze): slots are learned queries decoded in one pass; sampling perturbs
  every slot independently around one mean path. On the phantom its mean path is better and its held-out
  likelihood and sequence scores are worse than the autoregressive model's (``gazelabel train scanpath
  --decoding parallel`` to compare).

Optional report conditioning: a frozen MiniLM sentence embedding (384-d, :mod:`models.text_encoder`)
becomes one extra memory token.
"""

from __future__ import annotations

import math
import torch
import torch.nn as nn
import torch.nn.functional as F

from models.scanpath.config import DECODINGS, ScanpathConfig  # noqa: F401 (re-exported)

LOGVAR_MIN, LOGVAR_MAX = -9.0, 3.0


def sincos_2d(h: int, w: int, dim: int) -> torch.Tensor:
    """``(h*w, dim)`` fixed 2D sine-cosine position code (half the channels for y, half for x)."""
    quarter = dim // 4
    freqs = torch.exp(-math.log(10000.0) * torch.arange(quarter) / max(quarter, 1))
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")
    parts = [f(c.reshape(-1, 1) * freqs) for c in (ys, xs) for f in (torch.sin, torch.cos)]
    code = torch.cat(parts, dim=1)
    return F.pad(code, (0, dim - code.shape[1]))


def fourier_xy(fix: torch.Tensor, bands: int = 8, freqs: torch.Tensor | None = None) -> torch.Tensor:
    """``(..., 3)`` x, y (0..1), log-duration -> ``(..., 4 * bands + 1)`` sin/cos of x and y at ``bands``
    octaves, plus the log-duration: a code in which nearby positions are close and far ones distinguishable."""
    if freqs is None:  # a decoding loop passes them in, made once
        freqs = math.pi * 2.0 ** torch.arange(bands, device=fix.device, dtype=fix.dtype)
    xy = fix[..., :2, None] * freqs  # (..., 2, bands)
    code = torch.cat([torch.sin(xy), torch.cos(xy)], dim=-1).flatten(-2)
    return torch.cat([code, fix[..., 2:3]], dim=-1)


class ImageEncoder(nn.Module):
    """``(B, 1, S, S)`` image -> ``(B, (S/stride)^2, d_model)`` memory tokens (CNN + transformer encoder)."""

    def __init__(self, cfg: ScanpathConfig):
        super().__init__()
        if cfg.backbone == "gazelabel":
            layers, c_in = [], 1
            for c in cfg.channels:
                layers += [nn.Conv2d(c_in, c, 3, stride=2, padding=1), nn.GroupNorm(min(8, c), c), nn.GELU(),
                           nn.Conv2d(c, c, 3, padding=1), nn.GroupNorm(min(8, c), c), nn.GELU()]
                c_in = c
            self.cnn = nn.Sequential(*layers)
        else:  # a torchvision trunk, as under the classifier (its weights: ScanpathTrainConfig.weights)
            from models.classifier.backbones import BackboneEncoder

            self.cnn = BackboneEncoder(cfg.backbone, "imagenet" if cfg.input_norm == "auto" else cfg.input_norm)
            c_in = self.cnn.out_channels
        self.proj = nn.Linear(c_in, cfg.d_model)
        side = cfg.grid
        self.register_buffer("pos", sincos_2d(side, side, cfg.d_model), persistent=False)
        layer = nn.TransformerEncoderLayer(cfg.d_model, cfg.heads, cfg.ff, cfg.dropout, batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, cfg.encoder_layers, enable_nested_tensor=False)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        feats = self.cnn(image)  # (B, C, s, s)
        tokens = self.proj(feats.flatten(2).transpose(1, 2)) + self.pos  # (B, s*s, D)
        return self.encoder(tokens)


class ScanpathNet(nn.Module):
    """Image (+ optional report embedding) -> per-slot mixture of Gaussians over x, y, Gaussian over
    log-duration, and stop logits.

    Forward outputs (N = paths, K = slots, M = mixtures), normalised model coordinates / log-seconds:
        ``mix_logit`` (N, K, M); ``mean_xy`` (N, K, M, 2); ``logvar_xy`` (N, K, M, 2);
        ``mean_dur`` (N, K); ``logvar_dur`` (N, K); ``stop_logit`` (N, K).
    """

    FOURIER_BANDS = 8

    def __init__(self, cfg: ScanpathConfig):
        super().__init__()
        self.cfg = cfg
        d, m = cfg.d_model, cfg.mixtures
        self.encoder = ImageEncoder(cfg)
        self.text_proj = nn.Linear(cfg.text_dim, d) if cfg.text_dim else None
        self.slot_embed = nn.Parameter(torch.randn(cfg.slots, d) * 0.02)
        self.fix_embed = nn.Sequential(nn.Linear(4 * self.FOURIER_BANDS + 1, d), nn.GELU(), nn.Linear(d, d))
        layer = nn.TransformerDecoderLayer(d, cfg.heads, cfg.ff, cfg.dropout, batch_first=True, norm_first=True)
        self.decoder = nn.TransformerDecoder(layer, cfg.decoder_layers)
        self.norm = nn.LayerNorm(d)
        # Pointer: component queries against image-token keys -> weighted token centre.
        self.point_query = nn.Linear(d, m * d)
        self.point_key = nn.Linear(d, d)
        # Per component: offset x, y, logvar x, y, mixture logit; then log-duration mean, logvar, stop.
        self.head = nn.Linear(d, m * 5 + 3)
        with torch.no_grad():
            self.head.weight.mul_(0.1)
            self.head.bias.zero_()
            self.head.bias[m * 2 : m * 4] = -3.0  # initial x, y std ~0.2 of the image
            self.head.bias[m * 5] = math.log(cfg.duration_prior)
            self.head.bias[m * 5 + 1] = -1.0
        side = cfg.grid
        centres = (torch.stack(torch.meshgrid(torch.arange(side), torch.arange(side), indexing="ij"), -1).flip(-1) + 0.5) / side
        self.register_buffer("token_centres", centres.reshape(-1, 2).float(), persistent=False)  # (T, 2) x, y
        self.cell = 1.0 / side
        self.register_buffer("causal", torch.triu(torch.full((cfg.slots, cfg.slots), float("-inf")), 1), persistent=False)
        self.register_buffer("start", torch.tensor([0.5, 0.5, math.log(cfg.duration_prior)]), persistent=False)

    # ------------------------------------------------------------------ building blocks
    def memory(self, image: torch.Tensor, text: torch.Tensor | None = None) -> torch.Tensor:
        """``(B, T (+1), D)`` memory: T image tokens, then one report token when configured."""
        mem = self.encoder(image)
        if self.text_proj is not None:
            if text is None:
                raise ValueError("this scanpath model was trained with report text; pass the report embedding")
            mem = torch.cat([mem, self.text_proj(text)[:, None]], dim=1)
        return mem

    def point_keys(self, memory: torch.Tensor) -> torch.Tensor:
        """``(N, T, D)`` pointer keys of the image tokens (the report token is not pointed at)."""
        return self.point_key(memory[:, : self.token_centres.shape[0]])

    def _heads(self, hidden: torch.Tensor, memory: torch.Tensor | None, keys_t: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Heads of ``hidden`` ``(N, K, D)``; ``keys_t`` ``(N, D, T)``: the pointer keys, transposed, when
        already computed (decoding), else taken from ``memory``."""
        n, k, d = hidden.shape
        m = self.cfg.mixtures
        h = self.norm(hidden)
        out = self.head(h)
        keys_t = self.point_keys(memory).transpose(1, 2) if keys_t is None else keys_t
        queries = self.point_query(h).reshape(n, k * m, d)
        attn = torch.softmax(torch.bmm(queries, keys_t) / math.sqrt(d), dim=-1).reshape(n, k, m, -1)  # (N, K, M, T)
        offset = torch.tanh(out[..., : m * 2].reshape(n, k, m, 2)) * self.cell
        mean_xy = (attn @ self.token_centres + offset).clamp(0.0, 1.0)
        return {
            "mix_logit": out[..., m * 4 : m * 5],
            "mean_xy": mean_xy,
            "logvar_xy": out[..., m * 2 : m * 4].reshape(n, k, m, 2).clamp(LOGVAR_MIN, LOGVAR_MAX),
            "mean_dur": out[..., m * 5],
            "logvar_dur": out[..., m * 5 + 1].clamp(LOGVAR_MIN, LOGVAR_MAX),
            "stop_logit": out[..., m * 5 + 2],
        }

    def _decode(self, memory: torch.Tensor, previous: torch.Tensor | None) -> dict[str, torch.Tensor]:
        """Decode ``n`` slots; ``previous`` (B, n, 3) = the fixation before each slot (autoregressive)."""
        b = memory.shape[0]
        if previous is None:
            queries = self.slot_embed.expand(b, -1, -1)
            mask = None
        else:
            n = previous.shape[1]
            queries = self.slot_embed[:n] + self.fix_embed(fourier_xy(previous, self.FOURIER_BANDS))
            mask = self.causal[:n, :n]
        return self._heads(self.decoder(queries, memory, tgt_mask=mask), memory)

    def _stepper(self, memory: torch.Tensor):
        """Autoregressive decoding one slot at a time with cached keys and values: ``step(previous)`` takes
        the fixation before the next slot ``(N, 1, 3)`` and returns that slot's heads (``K = 1``), as
        :meth:`_decode` over the whole prefix would for its last slot (the causal mask makes them equal),
        without re-running the decoder over the prefix. Cross-attention keys/values of ``memory`` and the
        pointer keys are computed once; self-attention keys/values go into a buffer of ``slots`` positions.
        The layers' parameters are read directly (eval mode: no dropout), a few tensor ops per layer: at
        batch 1 a step is mostly per-op overhead, not arithmetic."""
        d = self.cfg.d_model
        layers = list(self.decoder.layers)
        heads = layers[0].self_attn.num_heads
        n = memory.shape[0]

        def split(x):  # (N, T, D) -> (N, heads, T, D / heads)
            return x.view(n, x.shape[1], heads, -1).transpose(1, 2)

        plan = []  # per layer, every tensor a step reads (module attribute lookups cost more than the ops)
        for layer in layers:
            sa, ca = layer.self_attn, layer.multihead_attn
            w, b = ca.in_proj_weight, ca.in_proj_bias
            ck = split(F.linear(memory, w[d:2 * d], b[d:2 * d]))  # (N, heads, T, hd)
            cv = split(F.linear(memory, w[2 * d:], b[2 * d:]))
            kv = memory.new_empty(2, n, heads, self.cfg.slots, d // heads)  # self-attention keys, values
            norms = [(nm.weight, nm.bias, nm.eps) for nm in (layer.norm1, layer.norm2, layer.norm3)]
            plan.append((norms, sa.in_proj_weight, sa.in_proj_bias, sa.out_proj.weight, sa.out_proj.bias,
                         w[:d], b[:d], ck, cv, ca.out_proj.weight, ca.out_proj.bias, kv,
                         layer.linear1.weight, layer.linear1.bias, layer.activation,
                         layer.linear2.weight, layer.linear2.bias))
        pointer_t = self.point_keys(memory).transpose(1, 2)  # (N, D, T)
        freqs = math.pi * 2.0 ** torch.arange(self.FOURIER_BANDS, device=memory.device, dtype=memory.dtype)
        e1, e2 = self.fix_embed[0], self.fix_embed[2]
        e1w, e1b, e2w, e2b = e1.weight, e1.bias, e2.weight, e2.bias
        slot_embed = self.slot_embed
        slot = [0]

        def step(previous: torch.Tensor) -> dict[str, torch.Tensor]:
            i = slot[0]
            slot[0] += 1
            code = fourier_xy(previous, self.FOURIER_BANDS, freqs)
            x = slot_embed[i] + F.linear(F.gelu(F.linear(code, e1w, e1b)), e2w, e2b)  # (N, 1, D)
            for (n1, n2, n3), sw, sb, sow, sob, wq, bq, ck, cv, cow, cob, kv, l1w, l1b, act, l2w, l2b in plan:
                qkv = F.linear(F.layer_norm(x, (d,), *n1[:2], n1[2]), sw, sb).view(n, 1, 3, heads, -1).permute(2, 0, 3, 1, 4)
                kv[:, :, :, i:i + 1] = qkv[1:]
                a = F.scaled_dot_product_attention(qkv[0], kv[0, :, :, :i + 1], kv[1, :, :, :i + 1])
                x = x + F.linear(a.transpose(1, 2).reshape(n, 1, d), sow, sob)
                q = F.linear(F.layer_norm(x, (d,), *n2[:2], n2[2]), wq, bq).view(n, 1, heads, -1).transpose(1, 2)
                a = F.scaled_dot_product_attention(q, ck, cv)
                x = x + F.linear(a.transpose(1, 2).reshape(n, 1, d), cow, cob)
                x = x + F.linear(act(F.linear(F.layer_norm(x, (d,), *n3[:2], n3[2]), l1w, l1b)), l2w, l2b)
            return self._heads(x, None, pointer_t)

        return step

    def shifted_inputs(self, targets: torch.Tensor) -> torch.Tensor:
        """Teacher-forcing inputs ``(B, K, 3)``: the start fixation, then targets[:, :-1]."""
        start = self.start.expand(targets.shape[0], 1, 3)
        return torch.cat([start, targets[:, :-1]], dim=1)

    def forward(self, image: torch.Tensor, targets: torch.Tensor | None = None, text: torch.Tensor | None = None,
                image_index: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Training pass.

        Args:
            image: ``(B, 1, S, S)``.
            targets: ``(N, K, 3)`` x, y, log-duration (padding slots hold anything finite); required for
                autoregressive decoding (teacher forcing), ignored by parallel decoding.
            text: ``(B, text_dim)`` report embeddings when configured.
            image_index: ``(N,)`` image of each target row, so several readers share one image encoding;
                default ``arange(B)``.
        """
        mem = self.memory(image, text)
        if image_index is not None:
            mem = mem[image_index]
        if self.cfg.decoding == "parallel":
            return self._decode(mem, None)
        if targets is None:
            raise ValueError("autoregressive training needs the target fixations (teacher forcing)")
        return self._decode(mem, self.shifted_inputs(targets))

    # ------------------------------------------------------------------ generation
    @torch.no_grad()
    def generate(self, image: torch.Tensor, *, n_samples: int = 1, temperature: float = 1.0, text: torch.Tensor | None = None,
                 generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Scanpaths for a batch of images.

        Args:
            image: ``(B, 1, S, S)``.
            n_samples: paths per image.
            temperature: 0 = the deterministic mean path (most probable component's mean, median
                duration, stop where P(stop) > 0.5). > 0 samples: a component by its weight, then
                ``x, y = mean + temperature * std * eps`` (reparameterisation; < 1 gives more typical paths),
                the log-duration at its full predicted spread (so durations keep the readers' distribution
                whatever the temperature), and the stop from its probability. Call in eval mode.
            text: ``(B, text_dim)`` when the model uses report text.
            generator: seeds the noise.

        Returns:
            ``paths`` (B, n_samples, K, 3) x, y in normalised model coordinates and duration in **seconds**;
            ``lengths`` (B, n_samples) number of valid fixations (>= 1).
        """
        if temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {temperature}")
        b, k = image.shape[0], self.cfg.slots
        mem = self.memory(image, text).repeat_interleave(n_samples, dim=0)  # (B*n, M, D)
        rows = mem.shape[0]

        on_cpu = mem.device.type == "cpu"

        def randn(shape):  # drawn on the CPU (seeded generators are CPU generators), then moved
            out = torch.randn(shape, generator=generator, device="cpu")
            return out if on_cpu else out.to(mem.device)

        def rand(shape):
            out = torch.rand(shape, generator=generator, device="cpu")
            return out if on_cpu else out.to(mem.device)

        scale = torch.tensor([temperature, temperature, 1.0], device=mem.device)

        def draw(out: dict, sl: slice) -> torch.Tensor:
            """(rows, n, 3) x, y, log-duration for slots ``sl``: the most probable component's mean at
            temperature 0, else a component drawn by its weight and a reparameterised Gaussian sample."""
            mix = out["mix_logit"][:, sl]
            if temperature == 0:
                comp = mix.argmax(-1)
            else:
                comp = torch.multinomial(torch.softmax(mix, -1).reshape(-1, mix.shape[-1]).cpu(), 1, generator=generator)
                comp = comp.reshape(mix.shape[:-1]).to(mix.device)
            pick = comp[..., None, None].expand(*comp.shape, 1, 2)
            mean_xy = out["mean_xy"][:, sl].gather(2, pick).squeeze(2)
            logvar_xy = out["logvar_xy"][:, sl].gather(2, pick).squeeze(2)
            mean = torch.cat([mean_xy, out["mean_dur"][:, sl, None]], -1)
            if temperature == 0:
                return mean
            logvar = torch.cat([logvar_xy, out["logvar_dur"][:, sl, None]], -1)
            value = mean + scale * torch.exp(0.5 * logvar) * randn(mean.shape)  # reparameterisation
            return torch.cat([value[..., :2].clamp(0.0, 1.0), value[..., 2:]], dim=-1)

        if self.cfg.decoding == "parallel":
            out = self._decode(mem, None)
            paths = draw(out, slice(None))
            # P(slot i is padding) rises along the path; one uniform per path picks the length, so every
            # sampled length has its marginal probability (0.5 = the median length for the mean path).
            level = torch.full((rows, 1), 0.5, device=mem.device) if temperature == 0 else rand((rows, 1))
            stops = torch.sigmoid(out["stop_logit"]) > level
        else:
            step = self._stepper(mem)
            previous = self.start.expand(rows, 1, 3)
            values, stop_list, ended = [], [], None
            for i in range(k):
                out = step(previous)  # heads of slot i, given the fixations before it
                value = draw(out, slice(0, 1))
                p_stop = torch.sigmoid(out["stop_logit"][:, 0:1])  # P(end here | path so far)
                stop_list.append(p_stop > 0.5 if temperature == 0 else rand(p_stop.shape) < p_stop)
                values.append(value)
                previous = value
                if i > 0:  # a path ends at its first stop after slot 0; done when every path has ended
                    ended = stop_list[-1][:, 0] if ended is None else ended | stop_list[-1][:, 0]
                    if bool(ended.all()):
                        break
            paths, stops = torch.cat(values, 1), torch.cat(stop_list, 1)
            if paths.shape[1] < k:
                paths = F.pad(paths, (0, 0, 0, k - paths.shape[1]))
                stops = F.pad(stops, (0, k - stops.shape[1]), value=True)
        stops = stops.clone()
        stops[:, 0] = False  # every path has at least one fixation
        first_stop = torch.where(stops.any(1), stops.float().argmax(1), torch.full((rows,), k, device=stops.device))
        paths = torch.cat([paths[..., :2], paths[..., 2:].exp()], dim=-1)
        return paths.reshape(b, n_samples, k, 3), first_stop.reshape(b, n_samples)
