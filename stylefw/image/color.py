"""Colour control (Gatys et al. 2017, "Controlling Perceptual Factors in Neural Style Transfer", section 5).

Pure functions on 1x3xHxW RGB tensors in [0, 1]; they know nothing about methods or configs,
so every method (pixel optimisation, a trained network at stylize time) can use them.

- Luminance-only transfer: stylize the luminance, then put the content's chroma back
  (:func:`luminance_image`, :func:`match_luminance`, :func:`recombine_with_chroma`). Luma and chroma
  are those of YIQ (NTSC), as in Gatys' reference code.
- Colour histogram matching: an affine map of the colours of one image so that their mean and
  covariance become another's (:func:`match_color_statistics`), applied to the style image
  before transfer; the reverse, the content in the style's colours (:func:`move_color_statistics`
  with :func:`blended_color_statistics`), is where the pixel method starts by default.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from stylefw.image.filters import resize

# NTSC YIQ: Y = 0.299 R + 0.587 G + 0.114 B (the luma of Gatys' `lum_transform`); I and Q carry the chroma.
RGB_TO_YIQ = torch.tensor([[0.299, 0.587, 0.114],
                           [0.595716, -0.274453, -0.321263],
                           [0.211456, -0.522591, 0.311135]], dtype=torch.float64)
YIQ_TO_RGB = torch.linalg.inv(RGB_TO_YIQ)  # the exact inverse, so that a round trip returns the same colours
COVARIANCE_EPS = 1e-5  # added to both covariances (Gatys' `match_color`): a grey image's covariance is singular


def _apply_matrix(matrix: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
    """Each pixel's 3-vector of `image` (B×3×H×W) multiplied by the 3×3 `matrix`."""
    return torch.einsum("ij,bjhw->bihw", matrix.to(image), image)


def rgb_to_yiq(image: torch.Tensor) -> torch.Tensor:
    """RGB (B×3×H×W) to YIQ: channel 0 is the luma Y in [0, 1], channels 1-2 the chroma I, Q."""
    return _apply_matrix(RGB_TO_YIQ, image)


def yiq_to_rgb(image: torch.Tensor) -> torch.Tensor:
    """YIQ (B×3×H×W) back to RGB, unclipped."""
    return _apply_matrix(YIQ_TO_RGB, image)


def luminance(image: torch.Tensor) -> torch.Tensor:
    """The luma Y = 0.299 R + 0.587 G + 0.114 B of an RGB image, as B×1×H×W."""
    return rgb_to_yiq(image)[:, :1]


def luminance_image(image: torch.Tensor) -> torch.Tensor:
    """The grey RGB image whose three channels are `image`'s luma (what a luminance-only transfer stylizes)."""
    return luminance(image).expand(-1, 3, -1, -1).clamp(0, 1).contiguous()


def match_luminance(style: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
    """The style's luma as a grey RGB image, with the mean and standard deviation of the content's luma.

    ``L_s' = σ_c / σ_s · (L_s − μ_s) + μ_c`` (Gatys et al. 2017, section 5.1), so that the style's
    brightness and contrast do not overrule the content's; clipped to [0, 1].
    """
    style_luma, content_luma = luminance(style), luminance(content)
    scale = content_luma.std(unbiased=False) / style_luma.std(unbiased=False).clamp_min(1e-6)
    matched = (style_luma - style_luma.mean()) * scale + content_luma.mean()
    return matched.expand(-1, 3, -1, -1).clamp(0, 1).contiguous()


def recombine_with_chroma(stylized: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
    """The stylized image's luma with the content's chroma (YIQ I, Q), as RGB clipped to [0, 1].

    `content` is resized to `stylized`'s size first if they differ.
    """
    content = resize(content, stylized.shape[-2:])
    combined = torch.cat([luminance(stylized), rgb_to_yiq(content.to(stylized))[:, 1:]], dim=1)
    return yiq_to_rgb(combined).clamp(0, 1)


def color_statistics(image: torch.Tensor, eps: float = COVARIANCE_EPS) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean (3) and covariance (3×3, plus ``eps·I``) of the pixel colours of a B×3×H×W image, in float64."""
    pixels = image.detach().to(torch.float64).transpose(0, 1).reshape(3, -1)  # B×3×H×W -> 3 × (B·H·W)
    mean = pixels.mean(dim=1)
    centred = pixels - mean[:, None]
    covariance = centred @ centred.T / pixels.shape[1] + eps * torch.eye(3, dtype=torch.float64)
    return mean, covariance


def _symmetric_power(matrix: torch.Tensor, power: float) -> torch.Tensor:
    """``Q Λ^power Qᵀ`` of a symmetric positive definite matrix."""
    values, vectors = torch.linalg.eigh(matrix)
    return vectors @ torch.diag(values.clamp_min(1e-12) ** power) @ vectors.T


def blended_color_statistics(images: Sequence[torch.Tensor], weights: Sequence[float],
                             eps: float = COVARIANCE_EPS) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and covariance of the mixture that draws a pixel from ``images[i]`` with probability ``weights[i]``.

    ``μ = Σ wᵢ μᵢ`` and ``Σ = Σ wᵢ (Σᵢ + μᵢ μᵢᵀ) − μ μᵀ`` (weights summing to 1; each ``Σᵢ`` already
    has ``eps·I``): the statistics of the styles' pixels pooled in those proportions. Averaging the
    covariances alone would drop the spread between the styles' mean colours.
    """
    parts = [color_statistics(image, eps) for image in images]
    mean = sum(w * m for w, (m, _) in zip(weights, parts))
    second_moment = sum(w * (c + torch.outer(m, m)) for w, (m, c) in zip(weights, parts))
    return mean, second_moment - torch.outer(mean, mean)


def match_color_statistics(image: torch.Tensor, reference: torch.Tensor, eps: float = COVARIANCE_EPS) -> torch.Tensor:
    """`image`'s colours moved so their mean and covariance are `reference`'s (linear colour histogram matching).

    Every pixel p becomes ``p' = A (p − μ_i) + μ_r`` with ``A = Σ_r^½ Σ_i^-½`` (symmetric square
    roots from the eigendecomposition), so that ``A Σ_i Aᵀ = Σ_r``: the "PCA" variant of Gatys
    et al. 2017, section 5.2 (Gatys' ``match_color(..., mode='pca')``), which the paper applies to
    the style image with the content as reference. ``eps·I`` is added to both covariances so a grey
    image (singular covariance) still gives a finite A. The result is clipped to [0, 1], which
    moves the statistics slightly when the reference's colours reach the ends of the range.
    """
    return move_color_statistics(image, *color_statistics(reference, eps), eps)


def move_color_statistics(image: torch.Tensor, mean: torch.Tensor, covariance: torch.Tensor,
                          eps: float = COVARIANCE_EPS) -> torch.Tensor:
    """`image`'s colours moved to the given mean and covariance (:func:`match_color_statistics`'s transform)."""
    image_mean, image_cov = color_statistics(image, eps)
    transform = _symmetric_power(covariance, 0.5) @ _symmetric_power(image_cov, -0.5)
    centred = image.to(torch.float64) - image_mean.view(1, 3, 1, 1)
    matched = _apply_matrix(transform, centred) + mean.view(1, 3, 1, 1)
    return matched.clamp(0, 1).to(image.dtype)