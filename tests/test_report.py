"""The HTML report: readable cells, a navigation list, short Data boxes, and "recorded earlier" boxes."""

from __future__ import annotations

from html.parser import HTMLParser

import numpy as np
import pytest

from kernelkit.report import _drop_long_asides, _fmt
from kernelkit.runs import Run

VOID = {"meta", "br", "img", "hr", "input", "link"}


class Node:
    def __init__(self, tag: str, attrs: dict[str, str | None], parent: Node | None) -> None:
        self.tag, self.attrs, self.parent = tag, attrs, parent
        self.children: list[Node] = []
        self.parts: list[str] = []

    @property
    def text(self) -> str:
        return "".join(self.parts)

    def find_all(self, tag: str, cls: str | None = None) -> list[Node]:
        out = []
        for c in self.children:
            if c.tag == tag and (cls is None or cls in (c.attrs.get("class") or "").split()):
                out.append(c)
            out.extend(c.find_all(tag, cls))
        return out


class Tree(HTMLParser):
    """A minimal DOM: every element with its children and all the text inside it."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.root = Node("#root", {}, None)
        self.cur = self.root
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, dict(attrs), self.cur)
        self.cur.children.append(node)
        if tag not in VOID:
            self.cur = node

    def handle_endtag(self, tag: str) -> None:
        node: Node | None = self.cur
        while node is not None and node.tag != tag:
            node = node.parent
        if node is not None and node.parent is not None:
            self.cur = node.parent

    def handle_data(self, data: str) -> None:
        node: Node | None = self.cur
        while node is not None:
            node.parts.append(data)
            node = node.parent


def _report(tmp_path, fill) -> Tree:
    with Run.create("t", {"seed": 0}, out=tmp_path / "run", quiet=True) as run:
        fill(run)
    return Tree((tmp_path / "run" / "report.html").read_text(encoding="utf-8"))


def test_cells_show_no_python_reprs_and_no_float32_noise(tmp_path):
    noisy = float(np.float32(-2.4))
    assert repr(noisy) == "-2.4000000953674316"  # the value the issue saw

    def fill(run):
        run.section("s", "S").table("T", [{"ratios": {"t=0.2": float(np.float32(0.30000001)), "t=0.3": 0.5},
                                           "seeds": [0, 1, 2], "pair": (4_649_060, 4_437_300),
                                           "value": noisy, "big": 123456789.0, "tiny": 1.5e-9, "none": None}])

    tree = _report(tmp_path, fill)
    cells = [td.text for td in tree.root.find_all("td")]
    assert cells == ["t=0.2: 0.3; t=0.3: 0.5", "0, 1, 2", "4649060, 4437300", "-2.4", "1.23457e+08", "1.5e-09",
                     "n/a"]
    body = " ".join(cells)
    for bad in ("{", "}", "[", "]", "'", "0000000", "(", ")"):
        assert bad not in body, bad


@pytest.mark.parametrize(("value", "text"), [(float("nan"), "nan"), (float("inf"), "inf"), (-float("inf"), "-inf"),
                                             (0.0, "0"), (1.0, "1"), (0.1234567891, "0.123457"), (True, "True"),
                                             ("<b>", "&lt;b&gt;"), ({"a": [1.0, 2.5]}, "a: 1, 2.5")])
def test_cell_format(value, text):
    assert _fmt(value) == text


@pytest.mark.parametrize(("line", "short"), [
    ("used x (short aside)", "used x (short aside)"),
    ("used x (" + "a" * 70 + " (nested) " + "b" * 5 + "); then y", "used x (…); then y"),
    ("unbalanced (" + "a" * 70, "unbalanced (" + "a" * 70),
    ("stray ) paren", "stray ) paren"),
])
def test_long_asides_are_dropped_from_the_visible_data_line(line, short):
    assert _drop_long_asides(line) == short


def test_navigation_is_a_list_with_one_link_per_section(tmp_path):
    def fill(run):
        for k in range(4):
            run.section(f"s{k}", f"Section {k}").text("x")

    tree = _report(tmp_path, fill)
    (nav,) = tree.root.find_all("nav")
    items = nav.find_all("li")
    assert [li.text for li in items] == [f"Section {k}" for k in range(4)]
    assert [[a.attrs["href"] for a in li.find_all("a")] for li in items] == [[f"#s{k}"] for k in range(4)]


def test_a_long_data_message_shows_what_was_used_and_keeps_the_rest_collapsed(tmp_path):
    where = ("cifar10_jpg/cifar10_jpg_test.zip not found under the data root /root/.cache/kernelkit (chosen by "
             "default; set --data-dir or $KERNELKIT_DATA). Download it from https://example.org/c.zip (10 MB).")
    one_line = (f"EMBEDDED FALLBACK: cifar10_jpg not found under the data root ({where}); using scikit-learn's "
                "8x8 digits upscaled to 32x32.")
    two_lines = "CIFAR-10 JPEGs not found (see below).\nDownload it from https://example.org/c.zip and rerun."

    def fill(run):
        sec = run.section("s", "S")
        sec.data_source("digits (embedded, 1797 images)")
        sec.data_source(one_line)
        sec.data_source(two_lines)

    tree = _report(tmp_path, fill)
    short, long, multi = tree.root.find_all("div", "data")
    assert short.text == "Data: digits (embedded, 1797 images)" and not short.find_all("details")
    for box, visible_text, full in ((long, "Data: EMBEDDED FALLBACK: cifar10_jpg not found under the data root "
                                           "(…); using scikit-learn's 8x8 digits upscaled to 32x32.", one_line),
                                    (multi, "Data: CIFAR-10 JPEGs not found (see below).", two_lines)):
        (details,) = box.find_all("details")
        assert box.text.replace(details.text, "") == visible_text
        assert details.find_all("pre")[0].text == full  # the full text is kept, collapsed


def test_a_recorded_table_sits_in_its_own_box_with_command_date_and_commit(tmp_path):
    def fill(run):
        sec = run.section("s", "S")
        sec.table("Measured", [{"acc": 0.5}])
        sec.recorded("Full-size run", [{"kernel": 13, "acc": 1.0}], command="kernelkit train --epochs 8",
                     date="2026-12-06", commit="28f467a", what="two dots on a torus", note="3 seeds")

    tree = _report(tmp_path, fill)
    (box,) = tree.root.find_all("div", "recorded")
    (h3,) = box.find_all("h3")
    assert h3.text == "Recorded earlier (not this run): Full-size run"
    assert "kernelkit train --epochs 8" in box.text and "2026-12-06" in box.text and "28f467a" in box.text
    assert "two dots on a torus" in box.text and "3 seeds" in box.text
    assert [td.text for td in box.find_all("td")] == ["13", "1"]
    # the measured table is outside every recorded box, and the recorded one is not a plain table
    plain = [t for t in tree.root.find_all("table") if t not in box.find_all("table")]
    assert [[td.text for td in t.find_all("td")] for t in plain] == [["0.5"]]
