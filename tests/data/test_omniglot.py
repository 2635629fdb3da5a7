"""Omniglot: full npz arrays, official zips (cross-checked pixel for pixel), generated zips, errors."""

import io
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

from kernelkit.data import DataFormatError, DataNotFoundError, load_dataset, load_omniglot, load_omniglot_zip
from kernelkit.data.transforms import resize
from tests.conftest import needs_data

NPZ = "omniglot/full_npz/images_background.npz"


def png1(arr_bool):
    buf = io.BytesIO()
    Image.fromarray(arr_bool).convert("1").save(buf, format="PNG")
    return buf.getvalue()


def write_small_zip(root, name="images_background_small9"):
    """Two alphabets, IDs given out of order in the archive, 3 drawings each, in the official layout."""
    rng = np.random.default_rng(0)
    drawings = {}
    (root / "omniglot").mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(root / "omniglot" / f"{name}.zip", "w") as z:
        chars = (("Zeta", "character02", 12), ("Alpha", "character01", 3), ("Zeta", "character01", 11))
        for alphabet, char, cid in chars:
            for d in (2, 1, 3):
                img = rng.random((105, 105)) > 0.2
                drawings[(cid, d)] = img
                z.writestr(f"{name}/{alphabet}/{char}/{cid:04d}_{d:02d}.png", png1(img))
    return drawings


def test_generated_zip_orders_characters_by_id_and_drawings_by_number(tmp_path):
    drawings = write_small_zip(tmp_path)
    ds = load_omniglot_zip("images_background_small9", root=tmp_path)
    assert ds.class_info["character_id"] == [3, 11, 12]
    assert ds.classes == ["Alpha/character01", "Zeta/character01", "Zeta/character02"]
    assert ds.class_info["alphabet"] == ["Alpha", "Zeta", "Zeta"]
    assert ds.targets.tolist() == [0] * 3 + [1] * 3 + [2] * 3
    for k, (cid, d) in enumerate((c, d) for c in (3, 11, 12) for d in (1, 2, 3)):
        np.testing.assert_array_equal(ds.images[k, 0].numpy(), drawings[(cid, d)].astype(np.uint8) * 255)
    inv = load_omniglot_zip("images_background_small9", invert=True, size=28, root=tmp_path)
    assert inv.images.shape == (9, 1, 28, 28)
    torch.testing.assert_close(inv.images, resize(255 - ds.images, (28, 28)))


def test_zip_errors(tmp_path):
    with pytest.raises(DataNotFoundError, match=r"omniglot/images_evaluation.zip not found.*brendenlake"):
        load_omniglot_zip("images_evaluation", root=tmp_path)
    (tmp_path / "omniglot").mkdir()
    with zipfile.ZipFile(tmp_path / "omniglot" / "empty.zip", "w") as z:
        z.writestr("readme.txt", "no images")
    with pytest.raises(DataFormatError, match="no Omniglot images found"):
        load_omniglot_zip("empty", root=tmp_path)
    with zipfile.ZipFile(tmp_path / "omniglot" / "broken.zip", "w") as z:
        z.writestr("s/A/character01/0001_01.png", b"not a png")
    with pytest.raises(DataFormatError, match=r"broken.zip:s/A/character01/0001_01.png: cannot decode image"):
        load_omniglot_zip("broken", root=tmp_path)


def test_npz_missing_or_corrupt(tmp_path):
    with pytest.raises(DataNotFoundError, match="alphabet_id_ranges.tsv not found.*bitsandscraps"):
        load_omniglot(root=tmp_path)
    d = tmp_path / "omniglot" / "full_npz"
    d.mkdir(parents=True)
    rows = ["set\tfirst_id\tlast_id\talphabet", "background\t0001\t0964\tA", "evaluation\t0965\t1623\tB"]
    (d / "alphabet_id_ranges.tsv").write_text("\n".join(rows) + "\n")
    np.savez(d / "images_background.npz", images=np.zeros((10, 20, 105, 105), bool))
    with pytest.raises(DataFormatError, match=r"expected 'images' bool \(964, 20, 105, 105\)"):
        load_omniglot(root=tmp_path)
    (d / "images_background.npz").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(DataFormatError, match="file corrupt or truncated"):
        load_omniglot(root=tmp_path)
    (d / "alphabet_id_ranges.tsv").write_text("\n".join(rows[:2]) + "\n")
    with pytest.raises(DataFormatError, match="expected 1623"):
        load_omniglot(root=tmp_path)


@pytest.fixture(scope="module")
def background(shared_data):
    return load_dataset("omniglot", split="background", root=shared_data)


@needs_data(NPZ)
def test_real_npz_sets(shared_data, background):
    bg = background
    assert bg.num_classes == 964 and bg.images.shape == (964 * 20, 1, 105, 105)
    assert bg.class_counts().unique().tolist() == [20]
    assert bg.class_info["character_id"][:2] == [1, 2] and bg.classes[0] == "Arcadian/character01"
    assert len(set(bg.class_info["alphabet"])) == 30
    # White background dominates (about 92% of pixels); every drawing has some ink.
    frac_white = (bg.images[::10] == 255).sum().item() / bg.images[::10].numel()
    assert 0.85 < frac_white < 0.97
    assert (bg.images.view(len(bg), -1).amin(1) == 0).all()
    ev = load_omniglot("evaluation", invert=True, root=shared_data)
    assert ev.num_classes == 659 and ev.images.shape == (659 * 20, 1, 105, 105)
    assert ev.class_info["character_id"][0] == 965 and len(set(ev.class_info["alphabet"])) == 20
    assert ev.classes[-1] == "ULOG/character26"
    assert (ev.images[::10] == 255).sum().item() / ev.images[::10].numel() < 0.15  # inverted: strokes = 255


@needs_data("omniglot/images_background_small1.zip")
@needs_data(NPZ)
def test_official_small_zip_is_pixel_identical_to_the_npz(shared_data, background):
    small = load_omniglot_zip("images_background_small1", root=shared_data)
    assert small.num_classes == 136 and len(small) == 2720
    ids = torch.tensor(small.class_info["character_id"]) - 1
    expected = background.images.view(964, 20, 1, 105, 105)[ids].reshape(-1, 1, 105, 105)
    assert torch.equal(small.images, expected)
    # Alphabet folder names in the zip agree with the ID table behind the npz.
    norm = [a.replace("_", " ").lower() for a in small.class_info["alphabet"]]
    assert norm == [background.class_info["alphabet"][i].lower() for i in ids.tolist()]


def test_chunked_bool_conversion_matches_whole_array_resize():
    from kernelkit.data.omniglot import _bool_to_pixels

    arr = np.random.default_rng(0).random((1100, 2, 12, 12)) > 0.3  # 2,200 images: two chunks
    raw = torch.from_numpy(arr.reshape(-1, 1, 12, 12).astype(np.uint8) * 255)
    assert torch.equal(_bool_to_pixels(arr, False, None), raw)
    torch.testing.assert_close(_bool_to_pixels(arr, True, 5), resize(255 - raw, (5, 5)), atol=0, rtol=0)
    stored_255 = arr.view(np.uint8) * np.uint8(255)  # True stored as byte 255, as in the real npz files
    assert torch.equal(_bool_to_pixels(stored_255.view(np.bool_), False, None), raw)
