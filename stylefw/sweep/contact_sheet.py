"""contact_sheet.png: every run of a sweep as a labelled thumbnail, laid out by the swept parameters.

Layout (:func:`arrange`), with the swept parameters in the order the command line names them:

- one swept parameter: one row, a column per value, the values as column headers;
- two: rows are the first parameter's values, columns the second's;
- more: rows are the first parameter's values, columns the combinations of the others
  (each column header lists them, one per line);
- no swept parameter, a grid with an empty or doubly used cell (Optuna's trials, a repeated
  value, a job that left no folder), or more than ``max_columns`` columns: a gallery in job
  order, each thumbnail captioned with its own swept values.

The sweep's content and style images head the sheet (top-left), beside a title with the
parameters every run shares. A failed run's cell is red and shows its error; the run with the
lowest objective gets a green frame.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from stylefw.image.grid import open_thumbnail
from stylefw.runtime.files import write_png

MAX_COLUMNS = 8
MIN_WIDTH = 640  # room for the title beside the content and style images
FONT_SIZE = 14
CAPTION_LINES = 3
MARGIN = 16
GAP = 12
BACKGROUND = (255, 255, 255)
INK = (40, 40, 40)
FAINT = (120, 120, 120)
FAILED_FILL = (250, 228, 228)
FAILED_INK = (170, 30, 30)
BEST_FRAME = (30, 150, 60)
_PUNCTUATION_BREAKS = (",", "=", ".", "/", "_")  # where a long word may wrap (after a space first)


@dataclass(frozen=True)
class SheetRun:
    """One run as the sheet shows it: its swept values, result image, caption lines and state."""

    values: dict[str, str]  # swept key -> value as written on the command line
    image: Path | None
    caption: list[str] = field(default_factory=list)
    failed: bool = False
    best: bool = False


@dataclass(frozen=True)
class Arrangement:
    """Where each run goes: `positions[i]` is the (row, column) of run i; labels are empty in a gallery."""

    row_labels: list[str]
    column_labels: list[str]
    positions: list[tuple[int, int]]
    gallery: bool

    @property
    def shape(self) -> tuple[int, int]:
        return max(row for row, _ in self.positions) + 1, max(column for _, column in self.positions) + 1


def readable_value(text: str) -> str:
    """A number as a person would write it (Hydra records ``1e5`` as ``100000.0``): 4 significant digits,
    ``1e5`` rather than ``1e+05``; anything else unchanged."""
    try:
        number = float(text)
    except (TypeError, ValueError):
        return str(text)
    if number.is_integer() and abs(number) < 1e4:
        return str(int(number))
    return f"{number:.4g}".replace("e+0", "e").replace("e+", "e").replace("e-0", "e-")


def _distinct(values: Sequence[object]) -> list:
    return list(dict.fromkeys(values))


def arrange(runs: Sequence[SheetRun], swept: Sequence[str], max_columns: int = MAX_COLUMNS) -> Arrangement:
    """The grid of the swept parameters (see the module docstring), or a gallery where that grid does not fit."""
    if not runs:
        raise ValueError("a contact sheet needs at least one run")
    if swept:
        row_of = [run.values.get(swept[0], "") if len(swept) > 1 else "" for run in runs]
        column_keys = swept[1:] if len(swept) > 1 else swept[:1]
        column_of = [tuple(run.values.get(key, "") for key in column_keys) for run in runs]
        rows, columns = _distinct(row_of), _distinct(column_of)
        positions = [(rows.index(row), columns.index(column)) for row, column in zip(row_of, column_of)]
        if len(set(positions)) == len(runs) == len(rows) * len(columns) and len(columns) <= max_columns:
            row_labels = [f"{swept[0]}={readable_value(row)}" for row in rows] if len(swept) > 1 else [""]
            column_labels = ["\n".join(f"{key}={readable_value(value)}" for key, value in zip(column_keys, column))
                             for column in columns]
            return Arrangement(row_labels, column_labels, positions, gallery=False)
    width = min(len(runs), max_columns, math.ceil(math.sqrt(len(runs))))
    return Arrangement([], [], [divmod(index, width) for index in range(len(runs))], gallery=True)


# --------------------------------------------------------------------------- drawing


def load_font(size: int = FONT_SIZE) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)  # Pillow >= 10.1 with FreeType: a scalable font
    except (TypeError, OSError, ImportError):
        return ImageFont.load_default()


def wrap(text: str, font: ImageFont.ImageFont | ImageFont.FreeTypeFont, width: float) -> list[str]:
    """`text` in lines no wider than `width` pixels, broken after a space, else after punctuation, else anywhere."""
    lines: list[str] = []
    for paragraph in text.split("\n"):
        line = ""
        for char in paragraph:
            if line and font.getlength(line + char) > width:
                cut = line.rfind(" ") + 1 or max(line.rfind(mark) for mark in _PUNCTUATION_BREAKS) + 1
                cut = cut if 0 < cut < len(line) else len(line)
                lines.append(line[:cut].rstrip())
                line = line[cut:].lstrip()
            line += char
        lines.append(line)
    return lines


@dataclass
class _Canvas:
    """The sheet being drawn: sizes derived from the thumbnail size and the font."""

    box: int
    font: ImageFont.ImageFont | ImageFont.FreeTypeFont
    image: Image.Image = field(init=False)
    draw: ImageDraw.ImageDraw = field(init=False)

    @property
    def line_height(self) -> int:
        return int(self.font.size * 1.35) if hasattr(self.font, "size") else 14

    def start(self, width: int, height: int) -> None:
        self.image = Image.new("RGB", (width, height), BACKGROUND)
        self.draw = ImageDraw.Draw(self.image)

    def text(self, xy: tuple[float, float], lines: Sequence[str], fill: tuple[int, int, int] = INK) -> None:
        x, y = xy
        for index, line in enumerate(lines):
            self.draw.text((x, y + index * self.line_height), line, font=self.font, fill=fill)

    def picture(self, xy: tuple[int, int], picture: Image.Image | None, failed: bool, frame: tuple | None) -> None:
        x, y = xy
        if picture is None:
            fill = FAILED_FILL if failed else (235, 235, 235)
            self.draw.rectangle((x, y, x + self.box - 1, y + self.box - 1), fill=fill)
            label = "failed" if failed else "no image"
            width = self.font.getlength(label)
            self.text((x + (self.box - width) / 2, y + self.box / 2 - self.line_height / 2), [label],
                      FAILED_INK if failed else FAINT)
        else:
            left, top = x + (self.box - picture.width) // 2, y + (self.box - picture.height) // 2
            self.image.paste(picture, (left, top))
            if failed:
                frame = frame or FAILED_INK
        if frame is not None:
            self.draw.rectangle((x - 3, y - 3, x + self.box + 2, y + self.box + 2), outline=frame, width=3)


def draw_contact_sheet(runs: Sequence[SheetRun], swept: Sequence[str], references: Sequence[tuple[str, Path]],
                       title: Sequence[str], box: int = 192, max_columns: int = MAX_COLUMNS) -> Image.Image:
    """The contact sheet as an image: `references` (label, path) and `title` lines on top, then the runs."""
    canvas = _Canvas(box, load_font())
    layout = arrange(runs, swept, max_columns)
    rows, columns = layout.shape
    captions = [_caption(run, swept, layout.gallery, canvas) for run in runs]
    cell_height = box + GAP // 2 + canvas.line_height * max(len(caption) for caption in captions)
    row_label_lines = [wrap(label, canvas.font, box) for label in layout.row_labels]
    label_width = max((canvas.font.getlength(line) for lines in row_label_lines for line in lines), default=0)
    label_width = int(label_width) + GAP if label_width else 0
    column_label_lines = [wrap(label, canvas.font, box) for label in layout.column_labels]
    header_height = canvas.line_height * max((len(lines) for lines in column_label_lines), default=0)
    grid_left = MARGIN + label_width
    grid_width = columns * box + (columns - 1) * GAP
    top_width, top_height = _top_size(canvas, references, title, max(grid_left + grid_width + MARGIN, MIN_WIDTH))
    grid_top = MARGIN + top_height + GAP + header_height + (GAP // 2 if header_height else 0)
    canvas.start(max(grid_left + grid_width + MARGIN, top_width), grid_top + rows * (cell_height + GAP) + MARGIN)
    _draw_top(canvas, references, title, canvas.image.width)
    for column, lines in enumerate(column_label_lines):
        canvas.text((grid_left + column * (box + GAP), grid_top - header_height - GAP // 2), lines)
    for row, lines in enumerate(row_label_lines):
        canvas.text((MARGIN, grid_top + row * (cell_height + GAP) + box / 2 - canvas.line_height * len(lines) / 2),
                    lines)
    for run, caption, (row, column) in zip(runs, captions, layout.positions):
        x, y = grid_left + column * (box + GAP), grid_top + row * (cell_height + GAP)
        canvas.picture((x, y), open_thumbnail(run.image, box), run.failed, BEST_FRAME if run.best else None)
        canvas.text((x, y + box + GAP // 2), caption, FAILED_INK if run.failed else INK)
    return canvas.image


def _caption(run: SheetRun, swept: Sequence[str], gallery: bool, canvas: _Canvas) -> list[str]:
    """The lines under a thumbnail: its swept values (in a gallery) then its own caption, cut to fit."""
    own = [line for text in run.caption for line in wrap(text, canvas.font, canvas.box)]
    if not gallery:
        return own[:CAPTION_LINES]
    values = [line for key in swept if key in run.values
              for line in wrap(f"{key}={readable_value(run.values[key])}", canvas.font, canvas.box)]
    return values + own[:CAPTION_LINES]


def _top_size(canvas: _Canvas, references: Sequence[tuple[str, Path]], title: Sequence[str],
              width: int) -> tuple[int, int]:
    reference_box = _reference_box(canvas)
    references_width = len(references) * (reference_box + GAP)
    title_width = max(width - MARGIN * 2 - references_width, 240)
    title_lines = [line for text in title for line in wrap(text, canvas.font, title_width)]
    height = max(reference_box + 2 * canvas.line_height if references else 0, len(title_lines) * canvas.line_height)
    return MARGIN * 2 + references_width + title_width, MARGIN + height


def _reference_box(canvas: _Canvas) -> int:
    return max(64, canvas.box * 2 // 3)


def _draw_top(canvas: _Canvas, references: Sequence[tuple[str, Path]], title: Sequence[str], width: int) -> None:
    """The content and style images (labelled) in the top-left corner, the title lines beside them."""
    reference_box = _reference_box(canvas)
    x = MARGIN
    for label, path in references:
        picture = open_thumbnail(path, reference_box)
        if picture is not None:
            canvas.image.paste(picture, (x, MARGIN + 2 * canvas.line_height))
        canvas.text((x, MARGIN), wrap(label, canvas.font, reference_box)[:2], FAINT)
        x += reference_box + GAP
    title_width = max(width - MARGIN - x, 240)
    canvas.text((x, MARGIN), [line for text in title for line in wrap(text, canvas.font, title_width)])


def write_contact_sheet(path: Path, runs: Sequence[SheetRun], swept: Sequence[str],
                        references: Sequence[tuple[str, Path]], title: Sequence[str], box: int = 192) -> Path:
    """Draw the sheet and write it to `path` atomically (a crash never leaves half a PNG)."""
    return write_png(draw_contact_sheet(runs, swept, references, title, box), path, optimize=True)
