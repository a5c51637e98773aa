"""Shifted ("transformed") Gram loss for long-range consistency (Berger & Memisevic 2016,
"Incorporating long-range consistency in CNN-based texture generation", arXiv 1606.01286)."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from stylefw.plugins.losses.gram import gram_matrix
from stylefw.errors import StylefwError
from stylefw.objective.terms import FeatureMatchingLoss

# Shifts in feature pixels. The stride doubles from layer to layer, so each layer compares positions
# 8, 16 and 32 input pixels apart (relu4_1: 16 and 32), reaching past the receptive fields of the
# shallow layers while every shift still fits images down to 64 px.
DEFAULT_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1")
DEFAULT_SHIFTS = ((8, 16, 32), (4, 8, 16), (2, 4, 8), (2, 4))


def shifted_gram_matrix(features: torch.Tensor, shift: int, dim: int) -> torch.Tensor:
    """Cross-correlation Gram ``A_δ = T₊(F) T₋(F)ᵀ / (C·M_δ)`` of B×C×H×W `features`, shape B×C×C.

    ``T₊`` drops the first δ = `shift` rows (`dim` = -2, y) or columns (`dim` = -1, x) and ``T₋``
    the last δ, so ``A_δ[i, j] = Σ_p F_i(p + δ) F_j(p) / (C·M_δ)`` over the M_δ = H·(W − δ) (or
    (H − δ)·W) positions p whose shifted partner is inside the map. Dividing by the overlap, as
    :func:`~stylefw.plugins.losses.gram.gram_matrix` divides by H·W, makes ``A_0`` the Gram matrix.
    """
    size = features.shape[dim]
    if not 0 <= shift < size:
        raise ValueError(f"shift {shift} does not fit dimension {dim} of size {size}")
    if shift == 0:
        return gram_matrix(features)
    leading = features.narrow(dim, shift, size - shift)
    trailing = features.narrow(dim, 0, size - shift)
    batch, channels = features.shape[:2]
    overlap = leading[0, 0].numel()
    flat_leading = leading.reshape(batch, channels, overlap)
    flat_trailing = trailing.reshape(batch, channels, overlap)
    return torch.bmm(flat_leading, flat_trailing.transpose(1, 2)) / (channels * overlap)


def shifted_grams(features: torch.Tensor, shifts: Sequence[int]) -> torch.Tensor:
    """The shifted Gram matrices along x and along y for every δ in `shifts`, stacked: B×2K×C×C."""
    grams = [shifted_gram_matrix(features, shift, dim) for shift in shifts for dim in (-1, -2)]
    return torch.stack(grams, dim=1)


def shifted_gram_loss(features: torch.Tensor, target_grams: torch.Tensor, shifts: Sequence[int]) -> torch.Tensor:
    """``E = 1/(2K) · Σ_{δ, axis} 1/C² · Σ_ij (A_{δ,axis} − Â_{δ,axis})²_ij`` over the K shifts, both axes.

    Berger & Memisevic's per-layer cross-correlation loss: Gatys's squared Gram difference on the
    shifted Grams of :func:`shifted_gram_matrix`, x and y terms averaged. Deviations: the Gram
    normalisation of this framework (divide by C·M_δ, mean over C²) instead of ``1/(4 C² M²)``,
    and several δ per layer averaged. With `shifts` = [0] this is exactly
    :func:`~stylefw.plugins.losses.gram.gram_loss`. `target_grams` (2K×C×C or B×2K×C×C) comes
    from :func:`shifted_grams` with the same `shifts`.
    """
    return (shifted_grams(features, shifts) - target_grams).pow(2).mean()


class ShiftedGramLoss(FeatureMatchingLoss):
    """Matches the style's shifted Gram matrices at `layers`, δ ∈ `shifts[i]` at ``layers[i]``.

    The paper's long-range term L_cc; its full loss L_gatys + w_cc·L_cc is ``loss=[gram,shifted_gram]``,
    and ``loss=[shifted_gram]`` uses the cross-correlations alone. `shifts` runs parallel to `layers`
    (like `layer_weights`); each entry is one δ or a list of δ, in feature pixels of that layer.
    δ = 0 is the plain Gram, so ``shifts=[[0, 8], …]`` also matches the Gram statistics.
    Berger & Memisevic's own layers, δ and w_cc could not be checked against the paper; the
    defaults (relu1_1…relu4_1, δ of 8–32 input pixels at each layer, weight 1e4 as for the Gram
    term since the normalisation is the same) were chosen and measured for this framework.
    """

    target_image = "style"

    def __init__(self, weight: float = 1.0, layers: Sequence[str] = DEFAULT_LAYERS,
                 shifts: Sequence[int | Sequence[int]] = DEFAULT_SHIFTS,
                 layer_weights: Sequence[float] | None = None) -> None:
        super().__init__(weight, layers, layer_weights)
        self.shifts = dict(zip(self.layers, _per_layer_shifts(shifts, len(self.layers))))

    def represent(self, feature: torch.Tensor, layer: str) -> torch.Tensor:
        return shifted_grams(feature, self._fitting_shifts(feature, layer))

    def distance(self, feature: torch.Tensor, target: torch.Tensor, layer: str) -> torch.Tensor:
        return shifted_gram_loss(feature, target, self._fitting_shifts(feature, layer))

    def _fitting_shifts(self, feature: torch.Tensor, layer: str) -> tuple[int, ...]:
        height, width = feature.shape[-2:]
        if max(self.shifts[layer]) >= min(height, width):
            raise StylefwError(
                f"shifted_gram: shift {max(self.shifts[layer])} at {layer} does not fit its {height}x{width} "
                "feature map: lower that layer's loss.shifted_gram.shifts or raise size"
            )
        return self.shifts[layer]

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, shifts={[list(shifts) for shifts in self.shifts.values()]}"


def _per_layer_shifts(shifts: Sequence[int | Sequence[int]], layer_count: int) -> list[tuple[int, ...]]:
    if not isinstance(shifts, Sequence) or isinstance(shifts, str) or len(shifts) != layer_count:
        raise StylefwError(
            f"shifted_gram: shifts {shifts!r} do not fit {layer_count} layers: give one δ or one list of δ "
            "per layer, e.g. loss.shifted_gram.shifts=[[8,16],[4,8]] for two layers"
        )
    per_layer = [tuple(entry) if isinstance(entry, Sequence) else (entry,) for entry in shifts]
    if any(not entry or any(not isinstance(d, int) or d < 0 for d in entry) for entry in per_layer):
        raise StylefwError(
            f"shifted_gram: shifts {shifts!r} must be non-negative integers, at least one per layer: "
            "e.g. loss.shifted_gram.shifts=[[8,16],[4,8]]"
        )
    return per_layer
