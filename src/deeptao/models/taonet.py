"""taonet: a sequence network over each object's nights, after TAO-Net (CNN + GRU on image sequences).

It reads the representation of :mod:`deeptao.data.representation`: per night
the co-add and the co-add minus the object's reference (what changed), plus
the night's forced photometry, noise, gap and exposure count; per object the
reference itself. The parts, and why:

- **Night encoder**: a small CNN on the two channels, at full resolution for
  its first layer and then pooled twice; its last map (3 x 3 for the default
  12-pixel crop) is flattened, not averaged, so where a residual sits — on the
  nucleus, 2 px off the host's centre, a dipole from a moving star — survives
  into the encoding.
- **A small stamp**: the central 12 x 12 pixels (about 30 arcsec at CSS's 2.5 arcsec a
  pixel) hold the object, its host and a moving star's first years; the
  rest of the cutout is field stars and galaxies, which say nothing of the
  class but let a network tell its few hundred training fields apart. On a
  survey of 300 objects per class the 12-pixel stamp scored 0.657 macro F1
  against 0.651 for 16 pixels and 0.623 for 32, three splits each.
- **Reference branch**: the same kind of CNN on the reference alone, for
  morphology (a point-like blazar, an AGN in an extended host, a bare field
  for a CV in quiescence).
- **Sequence**: a bidirectional GRU over the nights (padding packed away),
  so an event early in the history reaches the head as directly as a late
  one; then masked attention pooling and masked max pooling over nights.
  Attention lets the two nights of an outburst outweigh fifty quiet ones.
- **Stamp features** (``stamp_features=True``, the default): the twelve
  numbers of :mod:`deeptao.data.stamp_features` (the reference's size and
  concentration, where the largest change sits, a straight-line fit of the
  centroid against time) enter before the head, robustly standardised. A
  network handed the nightly centroids does not find the line through them
  on a thousand training objects; the fit finds most high-proper-motion
  stars. On ten splits of a 300-per-class survey they raised validation
  macro F1 on 7 of 10 splits (mean +0.015) and OTHER's test F1 from 0.45 to
  0.51 (``docs/benchmarks.md``).
- **Variability features** (``variability_features=True``, the default since
  2026-12-05): five numbers of :mod:`deeptao.data.variability_features` on
  how much, how often and at what lag the central flux changes, measured on
  the same nights, after the stamp features. The per-night photometry is an
  input too, but the recurrent network does not learn these timescales from
  it on a thousand objects. On ten splits they raised validation macro F1
  by 0.010 (6 of 10 splits) and lowered validation log-loss by 0.025 (9 of
  10); AGN and blazars gained most on test.
- **Event features** (``event_features=True``, taonet's default since
  2026-12-07; taonet-lc leaves them off): six numbers of
  :mod:`deeptao.data.event_features` on the brightest event (how often the
  object brightens, how fast the event rises and fades, how long it lasts,
  the level out of it), after the variability features. On ten splits they
  raised taonet's validation macro F1 by 0.016 and lowered its validation
  log-loss by 0.017 (each on 6 of 10 splits); SN, BZ and OTHER gained on test.
- **Rotation invariance**: training draws one of the eight flips/rotations per
  object; prediction averages the probabilities of all eight (as the ALeRCE
  stamp classifier does).

Training sees every night of every object (thinned by night dropout, with
fresh noise added to the co-adds each epoch), as prediction does; there are no
windows. The defaults (20 epochs under a cosine schedule, weight decay 0.2,
dropout 0.5, label smoothing 0.1, noise of half each night's own noise) were
chosen on a simulated survey of 300 objects per class: with the 32-pixel stamp
the network fitted its training set within about ten epochs and 12 scored
best; on the 12-pixel stamp it learns for longer (12 epochs 0.657, 20 epochs
0.686, 30 epochs 0.664 macro F1, three group splits each, bfloat16 training).
Before the stamp features, with 20 epochs it scored 0.686 ± 0.030 in bfloat16
and 0.654 ± 0.033 in float32 (a CPU without bfloat16) against the light-curve
forest's 0.555 ± 0.016, each fit in under two minutes on two CPU cores
(``docs/benchmarks.md``). The gap between the two is not the precision: on
five splits trained on a GPU, bfloat16 and float32 score 0.671 and 0.662, and
no setting of a sweep of 25 did clearly better on validation. With the stamp
features, float32 on a GPU, ten splits: 0.680 ± 0.021 against the forest's
0.569 ± 0.025; with the variability features as well, bfloat16 on two CPU
cores, the same ten splits: 0.694 ± 0.032; with the event features too,
float32 on two CPU cores: 0.701 ± 0.028 (0.687 ± 0.034 without them there).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence
from torch.utils.data import DataLoader

from deeptao.data.datasets import NightDataset, ObjectBatchSampler, collate_nights, night_arrays
from deeptao.data.night_features import NIGHT_FEATURE_BLOCKS, NightFeatureBlock, night_feature_matrix
from deeptao.data.representation import SCALAR_NAMES, ObjectNights, SequenceSettings, object_nights, open_sequences
from deeptao.io import order_objects
from deeptao.models._registry import register_model
from deeptao.models._torch import TorchClassifier, make_loader

if TYPE_CHECKING:  # pragma: no cover
    from deeptao.data.cache import PreparedCache

__all__ = ["StampEncoder", "TaoNet", "TaoNetClassifier", "taonet"]

_N_VIEWS = 8


class StampEncoder(nn.Module):
    """conv-BN-ReLU at full size, pool, conv, pool, conv; a 1 x 1 squeeze; flatten; linear to ``embed``.

    About 4 MFLOP per 32 x 32 stamp, 0.6 per 12 x 12: it runs on every night of every object.
    """

    def __init__(self, in_channels: int, *, crop: int = 12, width: int = 16, embed: int = 64) -> None:
        super().__init__()

        def block(c_in: int, c_out: int) -> list[nn.Module]:
            return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]

        self.features = nn.Sequential(
            *block(in_channels, width),
            nn.MaxPool2d(2),
            *block(width, 2 * width),
            nn.MaxPool2d(2),
            *block(2 * width, 2 * width),
            nn.Conv2d(2 * width, 8, 1),
            nn.ReLU(inplace=True),
        )
        side = crop // 4
        self.project = nn.Sequential(nn.Flatten(), nn.Linear(8 * side * side, embed), nn.ReLU(inplace=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.project(self.features(x))


class TaoNet(nn.Module):
    """Nights -> encoder -> BiGRU -> attention and max pooling, with a reference branch; returns logits.

    ``forward(x, ref, scalars, lengths, features=None)``: ``x`` (B, T, 2, c, c)
    zero-padded nights, ``ref`` (B, 1, c, c), ``scalars`` (B, T, S),
    ``lengths`` (B,) nights per object (>= 1), ``features`` (B, F) per-object
    features fused before the head (taonet-lc), standardised inside the
    network by the buffers ``feature_center`` and ``feature_scale``.
    """

    def __init__(
        self,
        n_classes: int,
        *,
        crop: int = 12,
        embed: int = 64,
        hidden: int = 48,
        dropout: float = 0.3,
        n_scalars: int = len(SCALAR_NAMES),
        n_features: int = 0,
    ) -> None:
        super().__init__()
        self.n_scalars = n_scalars
        self.night_encoder = StampEncoder(2, crop=crop, embed=embed)
        self.reference_encoder = StampEncoder(1, crop=crop, embed=embed // 2)
        self.night_input = nn.Sequential(nn.Linear(embed + n_scalars, embed), nn.ReLU(inplace=True))
        self.gru = nn.GRU(embed, hidden, batch_first=True, bidirectional=True)
        self.attention = nn.Linear(2 * hidden, 1)
        fused = 4 * hidden + embed // 2
        self.n_features = n_features
        if n_features:
            self.register_buffer("feature_center", torch.zeros(n_features))
            self.register_buffer("feature_scale", torch.ones(n_features))
            self.feature_encoder = nn.Sequential(nn.Linear(2 * n_features, 64), nn.ReLU(inplace=True))
            fused += 64
        self.head = nn.Sequential(
            nn.Dropout(dropout), nn.Linear(fused, 64), nn.ReLU(inplace=True), nn.Dropout(dropout), nn.Linear(64, n_classes)
        )

    def forward(
        self,
        x: torch.Tensor,
        ref: torch.Tensor,
        scalars: torch.Tensor,
        lengths: torch.Tensor,
        features: torch.Tensor | None = None,
    ) -> torch.Tensor:
        b, t = x.shape[:2]
        lengths = lengths.clamp(min=1, max=t)
        valid = torch.arange(t, device=x.device)[None, :] < lengths.to(x.device)[:, None]
        encoded = self.night_encoder(x[valid])  # padding is never encoded
        nights = encoded.new_zeros((b, t, encoded.shape[1]))
        nights[valid] = encoded
        tokens = self.night_input(torch.cat([nights, scalars.to(nights.dtype)], dim=2))
        packed = pack_padded_sequence(tokens, lengths.cpu(), batch_first=True, enforce_sorted=False)
        states, _ = pad_packed_sequence(self.gru(packed)[0], batch_first=True, total_length=t)
        return self._head(states, valid, ref, features)

    def forward_padded(
        self,
        x: torch.Tensor,
        ref: torch.Tensor,
        scalars: torch.Tensor,
        lengths: torch.Tensor,
        features: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """:meth:`forward`'s logits, computed on the padded batch as it is: the form a graph export can trace.

        :meth:`forward` selects the valid nights with a boolean mask and packs
        the sequences, both shapes that depend on the data, which an exported
        graph cannot hold. Here every night slot is encoded and the padding
        zeroed; the GRU's forward direction reads the right-padded sequences
        (padding after the last night does not reach a valid state), and its
        backward direction reads them shifted to the right end (left-padded,
        so it starts from each object's last night as packing makes it). Two
        passes of one GRU, each keeping one direction: more work, the same
        numbers (a test holds the two methods equal).
        """
        b, t = x.shape[0], x.shape[1]
        lengths = lengths.to(x.device).clamp(min=1, max=t)
        steps = torch.arange(t, device=x.device)
        valid = steps[None, :] < lengths[:, None]
        encoded = self.night_encoder(x.flatten(0, 1)).unflatten(0, (b, t))
        nights = encoded * valid[..., None].to(encoded.dtype)
        tokens = self.night_input(torch.cat([nights, scalars.to(nights.dtype)], dim=2))
        hidden = self.gru.hidden_size
        ahead = self.gru(tokens)[0][..., :hidden]
        shift = (t - lengths)[:, None]
        left = torch.gather(tokens, 1, (steps[None, :] - shift).clamp(min=0)[..., None].expand(-1, -1, tokens.shape[2]))
        behind_left = self.gru(left)[0][..., hidden:]
        behind = torch.gather(behind_left, 1, (steps[None, :] + shift).clamp(max=t - 1)[..., None].expand(-1, -1, hidden))
        states = torch.cat([ahead, behind], dim=2) * valid[..., None].to(ahead.dtype)
        return self._head(states, valid, ref, features)

    def _head(
        self, states: torch.Tensor, valid: torch.Tensor, ref: torch.Tensor, features: torch.Tensor | None
    ) -> torch.Tensor:
        """Masked attention and max pooling of the GRU states, the reference branch, the features; logits."""
        score = self.attention(states).squeeze(2).masked_fill(~valid, float("-inf"))
        weights = torch.softmax(score.float(), dim=1).to(states.dtype)
        attended = (weights[..., None] * states).sum(dim=1)
        peak = states.masked_fill(~valid[..., None], float("-inf")).amax(dim=1)
        parts = [attended, peak, self.reference_encoder(ref)]
        if self.n_features:
            if features is None:
                raise ValueError("this network was built with per-object features; pass features=")
            parts.append(self.feature_encoder(self._standardise(features)))
        return self.head(torch.cat(parts, dim=1))

    def _standardise(self, features: torch.Tensor) -> torch.Tensor:
        """Robust z-scores clipped to +-10, NaN as 0 beside a missing-value indicator."""
        missing = torch.isnan(features)
        z = ((features - self.feature_center) / self.feature_scale).clamp(-10.0, 10.0)
        return torch.cat([torch.where(missing, torch.zeros_like(z), z), missing.to(z.dtype)], dim=1)


class TaoNetClassifier(TorchClassifier):
    """Sequence classifier over an object's nights (see the module docstring).

    Parameters
    ----------
    crop : int, default=12
        Side of the central square the representation keeps (even, 8..64; a
        multiple of 4 keeps the encoder's pooling exact).
    embed, hidden : int, default=64, 48
        Night encoding size and GRU state size (each direction).
    dropout : float, default=0.5
        Before each layer of the head.
    night_dropout : float, default=0.1
        Training: each night is left out with this chance (one always stays),
        so the network cannot lean on one particular night of an object.
    noise : float, default=0.5
        Training: Gaussian noise of this many times each night's own noise is
        added to its co-add (a fresh draw every epoch).
    time_crop : float, default=1.0
        Training: below 1, each epoch shows a contiguous run of each object's
        nights, between this fraction of them and all of them, with the
        reference rebuilt from that run (as early classification rebuilds it
        from the first nights). The light-curve and stamp features stay those
        of the whole history: the crop varies the sequence, it does not
        simulate an object seen early.
    views : int, default=8
        Flips/rotations averaged at prediction (1: the image as it is).
    stamp_features : bool, default=True
        Fuse the twelve stamp features of :mod:`deeptao.data.stamp_features`
        before the head (measured on the nights the network is given).
    variability_features : bool, default=True
        Fuse the five variability features of
        :mod:`deeptao.data.variability_features` (how much, how often and on
        what timescale the central flux changes) after the stamp features
        (measured on the nights the network is given).
    intra_night_features : bool, default=False
        Fuse the five features of :mod:`deeptao.data.intra_night_features`
        (how the exposures of one night differ: a fading flare, a pulsating
        star) after the variability features.
    event_features : bool, default=True
        Fuse the six features of :mod:`deeptao.data.event_features` (how
        often the object brightens, how fast its brightest event rises and
        fades, its level out of the event) after those. taonet-lc's default
        is False.
    drw_features : bool, default=False
        Fuse the four features of :mod:`deeptao.data.drw_features` (the
        timescale and amplitude of a damped random walk fitted to the nightly
        photometry) after those. Off in both networks: on ten splits they
        left taonet-lc's validation scores level (macro F1 -0.004, log-loss
        -0.002) and its test macro F1 at 0.706 against 0.709.
    max_epochs : int, default=20
    batch_size : int or None, default=None
        Objects per training batch; None sizes it to the data: a fortieth of
        the training objects, between 16 and 32, so that a small survey gets
        more optimiser steps per epoch (the defaults were tuned on 1,260
        training objects, 40 batches of 32; with 420 objects, 13 batches of 32
        left the network under-trained after 12 epochs, its validation loss
        still falling; batches of 16 give it 26 steps an epoch).
    lr : float, default=2e-3
    weight_decay : float, default=0.2
    patience : int, default=8
    label_smoothing : float, default=0.1
    precision : {"auto", "32", "bf16"}, default="auto"
        bfloat16 autocast where the CPU or GPU supports it (about 1.6x the
        training speed on a 2-core CPU with avx512_bf16).
    **kwargs
        The common parameters of :class:`deeptao.models._torch.TorchClassifier`.
    """

    name = "taonet"
    #: whether the network also takes the light-curve features (taonet-lc)
    uses_features = False
    _batch_size_from_data = True
    # files saved before these options existed had neither feature block
    _defaults_before_recorded = {
        "stamp_features": False, "variability_features": False, "intra_night_features": False, "event_features": False,
        "drw_features": False,
    }  # fmt: skip

    def __init__(
        self,
        *,
        crop: int = 12,
        embed: int = 64,
        hidden: int = 48,
        dropout: float = 0.5,
        night_dropout: float = 0.1,
        noise: float = 0.5,
        time_crop: float = 1.0,
        views: int = _N_VIEWS,
        stamp_features: bool = True,
        variability_features: bool = True,
        intra_night_features: bool = False,
        event_features: bool = True,
        drw_features: bool = False,
        max_epochs: int = 20,
        batch_size: int | None = None,
        eval_batch_size: int = 64,
        lr: float = 2e-3,
        weight_decay: float = 0.2,
        patience: int = 8,
        label_smoothing: float = 0.1,
        precision: str = "auto",
        **kwargs: Any,
    ) -> None:
        super().__init__(
            max_epochs=max_epochs, batch_size=batch_size, eval_batch_size=eval_batch_size, lr=lr,
            weight_decay=weight_decay, patience=patience, label_smoothing=label_smoothing, precision=precision, **kwargs,
        )  # fmt: skip
        self.crop = crop
        self.embed = embed
        self.hidden = hidden
        self.dropout = dropout
        self.night_dropout = night_dropout
        self.noise = noise
        self.time_crop = time_crop
        self.views = views
        self.stamp_features = stamp_features
        self.variability_features = variability_features
        self.intra_night_features = intra_night_features
        self.event_features = event_features
        self.drw_features = drw_features

    def _check_params(self) -> None:
        super()._check_params()
        for name in ("embed", "hidden"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        self._settings()  # checks crop
        if not isinstance(self.views, int) or not 1 <= self.views <= _N_VIEWS:
            raise ValueError(f"views must be an int in [1, {_N_VIEWS}], got {self.views!r}")
        if not 0.0 <= self.night_dropout < 1.0:
            raise ValueError(f"night_dropout must be in [0, 1), got {self.night_dropout!r}")
        if not 0.0 < self.time_crop <= 1.0:
            raise ValueError(f"time_crop must be in (0, 1], got {self.time_crop!r}")

    def _settings(self) -> SequenceSettings:
        return SequenceSettings(crop=self.crop)

    def feature_names(self) -> tuple[str, ...]:
        """The per-object features the network takes before its head, in order (empty: none)."""
        return tuple(name for block in self._night_feature_blocks() for name in block.names)

    def _night_feature_blocks(self) -> list[NightFeatureBlock]:
        """The blocks of :data:`deeptao.data.night_features.NIGHT_FEATURE_BLOCKS` this network's parameters switch on."""
        return [block for block in NIGHT_FEATURE_BLOCKS if getattr(self, block.option)]

    def _n_features(self) -> int:
        return len(self.feature_names())

    def _build_network(self, n_classes: int) -> nn.Module:
        return TaoNet(
            n_classes, crop=self.crop, embed=self.embed, hidden=self.hidden, dropout=self.dropout,
            n_features=self._n_features(),
        )  # fmt: skip

    def _member(self, n_classes: int) -> nn.Module:
        return self._build_network(n_classes)  # no channels-last: the stamps are small and the GRU dominates

    def prepare_inputs(self, cache: PreparedCache, *, workers: int = 1) -> None:
        open_sequences(cache, self._settings(), workers=workers)

    # ------------------------------------------------------------------ features (taonet-lc)

    def _nights_features(self, objects: Iterable[ObjectNights]) -> np.ndarray | None:
        """The features measured on the representation itself (the blocks its parameters switch on); None if it takes none."""
        blocks = self._night_feature_blocks()
        if not blocks:
            return None
        return night_feature_matrix(objects, blocks, self._settings().aperture)

    def _cache_features(self, cache: PreparedCache, rows: np.ndarray) -> np.ndarray | None:
        store = open_sequences(cache, self._settings())
        return self._nights_features(store.object(int(r)) for r in np.asarray(rows, dtype=np.int64))

    def _array_features(self, sources: list[tuple[np.ndarray, ...]]) -> np.ndarray | None:
        settings = self._settings()
        return self._nights_features(object_nights(*src, settings) for src in sources)

    def _fit_features(self, features: np.ndarray) -> None:
        """Learn the features' standardisation (median, IQR) from the training objects."""
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a feature undefined for every object: all-NaN
            center = np.nanmedian(features, axis=0)
            q75, q25 = np.nanpercentile(features, [75, 25], axis=0)
        scale = (q75 - q25) / 1.349
        center = np.where(np.isfinite(center), center, 0.0)
        scale = np.where(np.isfinite(scale) & (scale > 0), scale, 1.0)
        self._feature_stats = (center, scale)

    def _init_network(self, network: nn.Module) -> None:
        if self._n_features():
            center, scale = self._feature_stats
            network.feature_center.copy_(torch.as_tensor(center, dtype=torch.float32))
            network.feature_scale.copy_(torch.as_tensor(scale, dtype=torch.float32))

    # ------------------------------------------------------------------ training

    def _make_loaders(
        self,
        cache: PreparedCache,
        rows: np.ndarray,
        y: np.ndarray,
        val_rows: np.ndarray | None,
        y_val: np.ndarray | None,
        seed: int,
    ) -> tuple[DataLoader, DataLoader | None, np.ndarray]:
        store = open_sequences(cache, self._settings())
        features = self._cache_features(cache, rows)
        if features is not None:
            self._fit_features(features)
        train_set = NightDataset(store, rows, y, features, night_dropout=self.night_dropout, noise=self.noise,
                                 time_crop=self.time_crop)
        batch_size = self.batch_size or int(np.clip(math.ceil(len(rows) / 40), 16, 32))
        sampler = ObjectBatchSampler(len(train_set), batch_size, train=True, seed=seed)
        train_loader = make_loader(train_set, sampler, self.num_workers, seed)
        val_loader = None
        if val_rows is not None and len(val_rows):
            val_set = NightDataset(store, val_rows, y_val, self._cache_features(cache, val_rows))
            val_loader = make_loader(val_set, ObjectBatchSampler(len(val_set), self.eval_batch_size), 0, seed)
        return train_loader, val_loader, y

    # ------------------------------------------------------------------ prediction

    def predict_proba(self, cache: PreparedCache, rows: np.ndarray) -> np.ndarray:
        """Class probabilities per object, shape ``(len(rows), len(classes_))``."""
        self._prepare_inference()
        rows = np.asarray(rows, dtype=np.int64)
        store = open_sequences(cache, self._settings())
        features = self._cache_features(cache, rows)
        return self._calibrated(
            self._predict_nights((store.object(int(r)) for r in rows), features, len(rows)), cache.night_counts(rows)
        )

    def _raw_proba_arrays(self, items: Sequence[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
        """Probabilities, before prior shift and temperature, of objects given as ``(images uint16 (n, 64, 64), mjd (n,))`` pairs."""
        self._prepare_inference()
        sources = list(order_objects(items))
        features = self._array_features(sources)
        settings = self._settings()
        nights = (object_nights(*src, settings) for src in sources)
        return self._predict_nights(nights, features, len(sources))

    def predict_proba_nights(self, objects: Sequence[ObjectNights], features: np.ndarray | None = None) -> np.ndarray:
        """Class probabilities for objects already in the representation (e.g. cut to their first nights).

        ``features``: taonet-lc's light-curve features of the same objects; the
        blocks measured on the nights (stamp, variability, ...) are measured here from ``objects``.
        The temperature is taken at each object's number of nights in the representation.
        """
        self._prepare_inference()
        own = self._nights_features(objects)
        if own is not None:
            features = own if features is None else np.column_stack([features, own])
        raw = self._predict_nights(iter(objects), features, len(objects))
        return self._calibrated(raw, np.array([len(obj.mjd) for obj in objects], dtype=np.int64))

    def _predict_nights(self, objects: Iterator[ObjectNights], features: np.ndarray | None, n: int) -> np.ndarray:
        """Average the probabilities of the ``views`` flips/rotations of each object (before prior shift and temperature)."""
        wanted = self._n_features()
        if wanted and (features is None or np.shape(features)[1] != wanted):
            got = "none" if features is None else np.shape(features)[1]
            raise ValueError(f"{self.name} takes {wanted} features per object ({', '.join(self.feature_names())}), got {got}")
        proba = np.zeros((n, len(self.classes_)))
        pending: list[dict[str, Any]] = []

        def flush() -> None:
            if pending:
                batch = collate_nights(pending)
                owner = batch.pop("owner").numpy()
                batch.pop("y")
                proba_views = np.exp(self._log_proba(batch))
                np.add.at(proba, owner, proba_views / self.views)
                pending.clear()

        aperture = self._settings().aperture
        for k, obj in enumerate(objects):
            for code in range(self.views):
                item = night_arrays(obj, code, aperture=aperture)
                item["owner"] = k
                if features is not None:
                    item["features"] = np.asarray(features[k], np.float32)
                pending.append(item)
            if len(pending) >= self.eval_batch_size:
                flush()
        flush()
        return proba / proba.sum(axis=1, keepdims=True)


@register_model("taonet")
def taonet(**kwargs: Any) -> TaoNetClassifier:
    """Sequence network over each object's nightly co-adds, difference images and photometry (after TAO-Net)."""
    return TaoNetClassifier(**kwargs)
