"""Every bad input a user can give `stylefw` ends in one line naming the problem and the fix: no traceback, exit 2.

The command runs in this process (the `stylefw_cli` fixture) so that each case costs milliseconds
to a second; tests/test_cli.py checks the real console script in subprocesses.
"""

from __future__ import annotations

import io
import re
from functools import partial
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from PIL import Image

from stylefw.runtime.files import is_writable_folder


def one_error_line(result) -> str:
    """The single `stylefw: error:` line of a failed command (and nothing that looks like a traceback)."""
    assert result.code == 2, result
    assert "Traceback" not in result.stderr and "Error executing job" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("stylefw: error: "), result.stderr
    return lines[0]


@pytest.fixture
def bad_files(tmp_path: Path, tiny_image: Path) -> dict[str, Path]:
    files = {"empty": tmp_path / "empty.jpg", "text": tmp_path / "notes.jpg", "truncated": tmp_path / "cut.jpg"}
    files["empty"].write_bytes(b"")
    files["text"].write_text("these are my notes, not a photo")
    whole = io.BytesIO()
    Image.open(tiny_image).save(whole, format="JPEG")
    files["truncated"].write_bytes(whole.getvalue()[:300])
    return files


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("missing", r"content image '.*missing.jpg' not found: give the path of an image file or a bundled name"),
        ("directory", r"content image '.*' is a directory: give the path of one image file"),
        ("empty", r"content image '.*empty.jpg' is empty \(0 bytes\).*give a complete image file"),
        ("text", r"content image '.*notes.jpg' is not an image Pillow can read .*: give an image file"),
        ("truncated", r"content image '.*cut.jpg' is truncated or damaged .*: download or export it again"),
    ],
)
def test_unusable_content_files(stylefw_cli, bad_files: dict[str, Path], tmp_path: Path, kind: str,
                                message: str) -> None:
    path = {"missing": tmp_path / "missing.jpg", "directory": tmp_path, **bad_files}[kind]
    assert re.search(message, one_error_line(stylefw_cli(f"content={path}")))


def test_unusable_style_file_is_named_as_the_style(stylefw_cli, bad_files: dict[str, Path]) -> None:
    assert "style image" in one_error_line(stylefw_cli(f"style={bad_files['text']}"))


def test_image_over_max_image_pixels_says_how_to_allow_it(stylefw_cli, tiny_image: Path) -> None:
    line = one_error_line(stylefw_cli(f"content={tiny_image}", "max_image_pixels=1000"))
    assert "is 40x30 = 1200 pixels, more than max_image_pixels=1000" in line and "add max_image_pixels=1200" in line
    assert stylefw_cli(f"content={tiny_image}", "max_image_pixels=null", "method.steps=1").code == 0


@pytest.fixture
def unwritable_dir(tmp_path: Path) -> Path:
    """A folder no file can be created in: read-only permissions, or (as root, who ignores them) /sys."""
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o555)
    if is_writable_folder(folder):
        folder = next((Path(p) for p in ("/sys", "/proc") if Path(p).is_dir() and not is_writable_folder(Path(p))),
                      None)
        if folder is None:
            pytest.skip("no unwritable folder to test with")
    yield folder
    (tmp_path / "read-only").chmod(0o755)


def test_unwritable_output_folder_fails_before_any_work(stylefw_cli, unwritable_dir: Path, tmp_path: Path) -> None:
    line = one_error_line(stylefw_cli(f"output={unwritable_dir}/result.png", "hydra.run.dir=run"))
    assert f"folder {unwritable_dir} is not writable: choose another folder" in line
    assert not (tmp_path / "run" / "astronaut_church_at_auvers.png").exists()


def test_unwritable_run_folder(stylefw_cli, unwritable_dir: Path) -> None:
    line = one_error_line(stylefw_cli(f"hydra.run.dir={unwritable_dir}/outputs/run"))
    assert f"cannot write the run folder '{unwritable_dir}/outputs" in line
    assert "run stylefw from a writable folder or set hydra.run.dir=" in line


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["size=0"], "size=0 must be a positive whole number"),
        (["size=8"], "at size=8 the content image becomes 8x8 px, but the backbone's deepest layer needs at least "
                     "16 px on each side: use size=16 or more"),
        (["method.steps=-3"], "method.steps=-3 must be a positive whole number"),
        # Keys with a type in the option's schema are checked while Hydra composes, before anything runs.
        (["method.steps=abc"], "method.steps=abc: Value 'abc' of type 'str' could not be converted to Integer: "
                               "give a whole number"),
        (["loss.gram.weight=abc"], "loss.gram.weight=abc: Value 'abc' of type 'str' could not be converted to Float: "
                                   "give a number"),
        (["loss.gram.weight=-1"], "loss.gram.weight=-1.0 must be a number >= 0 (0 turns the term off)"),
        (["content_loss.weight=[1,2]"], "content_loss.weight=[1,2]: Value '[1, 2]' of type 'list' could not be "
                                        "converted to Float: give a number"),
        (["optimizer.lr=-1"], "optimizer.lr=-1.0 must be a positive number"),
        (["optimizer=adam", "optimizer.lr=-1"], "optimizer could not be built (Invalid learning rate: -1.0)"),
        (["optimizer=adam", "optimizer.lr=fast"], "optimizer.lr=fast: Value 'fast' of type 'str' could not be "
                                                  "converted to Float: give a number"),
        (["net.depthwise=maybe", "method=fast"], "net.depthwise=maybe: Value 'maybe' is not a valid bool"),
        (["threads=0"], "threads=0 must be a positive whole number"),
        (["max_image_pixels=0"], "max_image_pixels=0 must be a positive whole number, or null (null: no limit)"),
        (["output=result.jpg"], "must end in .png"),
    ],
)
def test_out_of_range_and_wrongly_typed_values(stylefw_cli, overrides: list[str], message: str) -> None:
    assert message in one_error_line(stylefw_cli(*overrides))


def test_elongated_image_names_the_size_that_works(stylefw_cli, tmp_path: Path) -> None:
    path = tmp_path / "strip.png"
    Image.new("RGB", (200, 4), (90, 90, 90)).save(path)
    line = one_error_line(stylefw_cli(f"style={path}", "size=32"))
    assert "the style image becomes 32x1 px" in line and "use size=800 or more, or a less elongated image" in line


def optimizing_with(factory) -> SimpleNamespace:
    """What PixelMethod.peak_memory_bytes reads of a run's context: its optimizer factory."""
    return SimpleNamespace(optimizer=factory)


def test_run_too_big_for_memory_names_the_largest_size_that_fits(stylefw_cli, monkeypatch: pytest.MonkeyPatch) -> None:
    import stylefw.method
    from stylefw.plugins.methods.pixel import PixelMethod
    from stylefw.plugins.optimizers.lbfgs import LBFGS

    available = 700 * 2**20
    monkeypatch.setattr(stylefw.method, "available_memory_bytes", lambda device: available)
    line = one_error_line(stylefw_cli("size=512"))
    assert "size=512 needs about" in line and "GiB is free on cpu: use size=" in line
    largest = int(line.split("use size=")[1].split()[0])
    method, context = PixelMethod(steps=3), optimizing_with(partial(LBFGS, history_size=20))  # the default's
    assert method.peak_memory_bytes(largest, largest, context) <= available \
        < method.peak_memory_bytes(largest + 1, largest + 1, context)
    assert stylefw_cli(f"size={min(largest, 32)}", "method.steps=1").code == 0


def test_memory_estimate_is_on_the_safe_side_of_measured_runs() -> None:
    """Peak RSS measured with torch's L-BFGS and its history of 100 at 512 px, 300 steps (2.5 GB, of which ~0.8 GB
    is the process before the check) and at 256 px, 120 steps (1.35 GB): the estimate must cover the growth, by
    at most 2x."""
    from stylefw.plugins.methods.pixel import PixelMethod

    torch_lbfgs = optimizing_with(torch.optim.LBFGS)  # those runs kept torch's default history of 100
    for side, steps, measured_growth in ((512, 300, 1.7e9), (256, 120, 0.55e9)):
        estimate = PixelMethod(steps=steps).peak_memory_bytes(side, side, torch_lbfgs)
        assert measured_growth <= estimate <= 2 * measured_growth, (side, estimate)


def test_memory_estimate_counts_the_configured_optimizer_state() -> None:
    """The history the configured optimizer keeps, asked of the optimizer: a 2048² run with the default history of
    20 must not be refused on a machine where it fits."""
    from stylefw.plugins.methods.pixel import PixelMethod
    from stylefw.plugins.optimizers.lbfgs import LBFGS

    history_20 = optimizing_with(partial(LBFGS, history_size=20))
    estimates = [PixelMethod(steps=300).peak_memory_bytes(1024, 1024, context) for context in (
        optimizing_with(partial(torch.optim.Adam, lr=5.0)), history_20,
        optimizing_with(partial(torch.optim.LBFGS, history_size=100)), optimizing_with(torch.optim.LBFGS))]
    assert estimates[0] < estimates[1] < estimates[2] == estimates[3]
    # Measured (docs/performance.md, "Memory"): 1024², 30 steps, history 20: 3.63 GiB peak RSS, ~0.8 GiB of it
    # before the check.
    measured_growth = (3.63 - 0.8) * 2**30
    assert measured_growth <= PixelMethod(steps=30).peak_memory_bytes(1024, 1024, history_20) <= 2 * measured_growth
    assert PixelMethod(steps=300).peak_memory_bytes(2048, 2048, history_20) < 20 * 2**30


def test_weights_file_that_is_not_a_state_dict(stylefw_cli, tmp_path: Path) -> None:
    listed, garbage, pickled = tmp_path / "list.pth", tmp_path / "garbage.pth", tmp_path / "model.pth"
    torch.save([torch.zeros(1)], listed)
    garbage.write_bytes(b"\x00not a torch file")
    torch.save(torch.nn.Linear(1, 1), pickled)  # a whole module: refused by weights_only=True
    for path, problem in ((listed, "holds a list, not a state dict"), (garbage, "could not be loaded as a state dict"),
                          (pickled, "could not be loaded as a state dict")):
        line = one_error_line(stylefw_cli(f"backbone.weights={path}", "backbone.width=1"))
        assert f"weights file '{path}' {problem}" in line and "torch.save(model.state_dict(), path)" in line


# --- unusual but valid inputs run, with at most a one-line warning -------------------------------------------------

def test_unusual_images_run_to_completion(stylefw_cli, tmp_path: Path) -> None:
    folder = tmp_path / "dossier été"
    folder.mkdir()
    content, style, output = folder / "mon image.jpg", folder / "style transparent.png", folder / "résultat 1.png"
    Image.new("CMYK", (48, 40), (0, 200, 255, 0)).save(content)
    Image.new("RGBA", (40, 48), (0, 0, 255, 128)).save(style)
    # Hydra's override grammar takes accents only in quoted values (spaces need no quotes beyond the shell's).
    result = stylefw_cli(f'content="{content}"', f'style="{style}"', f'output="{output}"', "method.steps=1")
    assert result.code == 0, result.stderr
    assert result.stdout.strip().endswith(f"Saved {output}") and output.is_file()
    assert "Traceback" not in result.stderr and "warning" not in result.stderr


def test_animated_and_tiny_style_warn_in_one_line_each(stylefw_cli, tmp_path: Path) -> None:
    frames = [Image.new("RGB", (4, 3), colour) for colour in ((200, 30, 30), (30, 30, 200))]
    gif = tmp_path / "anim.gif"
    frames[0].save(gif, save_all=True, append_images=frames[1:], duration=100)
    result = stylefw_cli(f"style={gif}", "method.steps=1")
    assert result.code == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if "warning" in line]
    assert warnings == [
        f"stylefw: warning: style image '{gif}' has several frames (an animation): using its first frame",
        f"stylefw: warning: style image '{gif}' is only 4x3 px and is enlarged 8.0x to size=32: expect soft, "
        "blurry detail; give a larger image or a smaller size",
    ]


def test_unquoted_accented_path_shows_the_quoted_form(stylefw_cli) -> None:
    line = one_error_line(stylefw_cli("content=/photos/été/ma photo.jpg"))
    assert line == ("stylefw: error: cannot parse 'content=/photos/été/ma photo.jpg': Hydra needs quotes around "
                    "values with accents or other non-ASCII characters: "
                    "write 'content=\"/photos/été/ma photo.jpg\"' (the single quotes are for the shell)")


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        ({"memory.max": "1000000\n", "memory.current": "600000\n", "memory.stat": "anon 1\ninactive_file 50000\n"},
         450_000),
        ({"memory.max": "max\n", "memory.current": "600000\n"}, None),
        ({"memory/memory.limit_in_bytes": "2000000\n", "memory/memory.usage_in_bytes": "500000\n",
          "memory/memory.stat": "total_inactive_file 100\n"}, 1_500_100),
    ],
    ids=["cgroup_v2", "v2_without_limit", "cgroup_v1"],
)
def test_container_memory_limit_counts_as_available(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   files: dict[str, str], expected: int | None) -> None:
    """docker --memory: the cgroup's limit minus its usage (page cache counts as free) caps what is available."""
    import stylefw.runtime.resources as resources

    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    monkeypatch.setattr(resources, "_CGROUP_ROOT", tmp_path)
    assert resources._cgroup_headroom() == expected
    host = resources._meminfo_available()
    assert host is None or resources.available_memory_bytes("cpu") == min(host, expected or host)
