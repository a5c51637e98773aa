"""The contact sheet's layout (rows and columns from the swept parameters) and its drawing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from stylefw.sweep.contact_sheet import (
    SheetRun,
    arrange,
    draw_contact_sheet,
    readable_value,
    wrap,
    load_font,
    write_contact_sheet,
)


def runs_of(*value_sets: dict[str, str]) -> list[SheetRun]:
    return [SheetRun(values=values, image=None) for values in value_sets]


def test_one_swept_parameter_gives_one_row_with_a_column_per_value() -> None:
    runs = runs_of({"w": "1"}, {"w": "10"}, {"w": "100"})
    layout = arrange(runs, ["w"])
    assert not layout.gallery
    assert layout.positions == [(0, 0), (0, 1), (0, 2)]
    assert layout.row_labels == [""]
    assert layout.column_labels == ["w=1", "w=10", "w=100"]


def test_two_swept_parameters_give_rows_of_the_first_and_columns_of_the_second() -> None:
    runs = runs_of(*({"loss": loss, "w": w} for loss in ("gram", "gram+hist") for w in ("1e3", "1e4", "1e5")))
    layout = arrange(runs, ["loss", "w"])
    assert not layout.gallery
    assert layout.shape == (2, 3)
    assert layout.row_labels == ["loss=gram", "loss=gram+hist"]
    assert layout.column_labels == ["w=1000", "w=1e4", "w=1e5"]
    assert layout.positions[4] == (1, 1)  # gram+hist, 1e4


def test_three_swept_parameters_make_columns_of_the_combinations_of_the_others() -> None:
    runs = runs_of(*({"a": a, "b": b, "c": c} for a in "xy" for b in "12" for c in "pq"))
    layout = arrange(runs, ["a", "b", "c"])
    assert layout.shape == (2, 4)
    assert layout.column_labels == ["b=1\nc=p", "b=1\nc=q", "b=2\nc=p", "b=2\nc=q"]
    assert layout.positions[runs.index(SheetRun({"a": "y", "b": "2", "c": "p"}, None))] == (1, 2)


def test_runs_that_do_not_fill_a_grid_are_shown_as_a_gallery_in_job_order() -> None:
    # Optuna: every trial has its own values, so a grid would be almost empty.
    runs = runs_of(*({"w": str(100 + i), "tv": str(i * 7)} for i in range(5)))
    layout = arrange(runs, ["w", "tv"])
    assert layout.gallery and layout.row_labels == [] and layout.column_labels == []
    assert layout.positions == [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1)]


def test_too_many_values_for_one_row_become_a_gallery() -> None:
    layout = arrange(runs_of(*({"w": str(i)} for i in range(12))), ["w"], max_columns=8)
    assert layout.gallery and layout.shape == (3, 4)


def test_readable_value_writes_numbers_as_a_person_would() -> None:
    assert [readable_value(v) for v in ("1000.0", "100000.0", "1e-05", "1234.5678", "gram+hist")] == [
        "1000", "1e5", "1e-5", "1235", "gram+hist"]


def test_wrap_keeps_every_line_within_the_width() -> None:
    font = load_font()
    text = "all runs: backbone.weights=random backbone.width=0.125 size=32 a_very_long_key_without_spaces=1"
    lines = wrap(text, font, 120)
    assert len(lines) > 1
    assert all(font.getlength(line) <= 120 for line in lines)
    assert "".join(lines).replace(" ", "") == text.replace(" ", "")


def solid_png(path: Path, colour: tuple[int, int, int], size: tuple[int, int] = (40, 30)) -> Path:
    Image.new("RGB", size, colour).save(path)
    return path


def test_sheet_places_each_result_in_its_cell_with_references_on_top(tmp_path: Path) -> None:
    colours = {("a", "1"): (250, 0, 0), ("a", "2"): (0, 250, 0), ("b", "1"): (0, 0, 250), ("b", "2"): (250, 250, 0)}
    runs = [SheetRun({"k": k, "v": v}, solid_png(tmp_path / f"{k}{v}.png", colour, (64, 64)), ["style 0.2"])
            for (k, v), colour in colours.items()]
    reference = solid_png(tmp_path / "content.png", (255, 0, 255), (64, 64))
    box = 64
    sheet = np.asarray(draw_contact_sheet(runs, ["k", "v"], [("content: c", reference)], ["a title"], box=box))
    magenta = np.all(sheet == (255, 0, 255), axis=-1)
    assert magenta.any(), "the content reference is drawn"
    top_of_references = np.argwhere(magenta)[:, 0].min()
    for colour in colours.values():
        where = np.argwhere(np.all(sheet == colour, axis=-1))
        assert len(where) >= box * box * 0.9, colour
        assert where[:, 0].min() > top_of_references
    red, green, blue = (np.argwhere(np.all(sheet == c, axis=-1)).mean(0) for c in list(colours.values())[:3])
    assert abs(red[0] - green[0]) < 1 and green[1] > red[1]  # a=1, a=2: same row, next column
    assert abs(red[1] - blue[1]) < 1 and blue[0] > red[0]  # b=1: next row, same column


def test_failed_runs_without_an_image_get_a_red_cell(tmp_path: Path) -> None:
    runs = [SheetRun({"w": "1"}, solid_png(tmp_path / "ok.png", (0, 0, 200)), ["ok"]),
            SheetRun({"w": "2"}, None, ["failed: content image 'x.jpg' not found"], failed=True)]
    path = write_contact_sheet(tmp_path / "sheet.png", runs, ["w"], [], ["title"], box=48)
    sheet = np.asarray(Image.open(path).convert("RGB"))
    assert np.all(sheet == (250, 228, 228), axis=-1).sum() > 48 * 48 * 0.5
    assert not list(tmp_path.glob(".sheet.png.*")), "written atomically, no temporary file left"


def test_an_empty_sweep_has_no_sheet() -> None:
    with pytest.raises(ValueError):
        arrange([], ["w"])
