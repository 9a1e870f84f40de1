"""`leaderboards.export`: a hostile model name is text in every format, as in the HTML."""

from __future__ import annotations

import pandas as pd

from dcbench.leaderboards.export import to_latex, to_markdown

NAME = "<svg onload=alert(3)> [x](javascript:y) a\\b{c}_~^&"


def _display() -> pd.DataFrame:
    return pd.DataFrame({"method": [NAME, "random-alexnet_small"], "conv5": ["41.0", "12.3"]})


def test_markdown_has_no_raw_html_or_links():
    md = to_markdown(_display())
    assert "<svg" not in md and "&lt;svg onload=alert(3)&gt;" in md
    assert "[x](" not in md and "\\[x\\](javascript" in md and "&amp;" in md
    assert "random-alexnet_small" in md  # ordinary names read as they are


def test_markdown_keeps_the_brackets_of_an_interval():
    """Only link syntax is escaped: a paired interval cell reads as printed."""
    frame = pd.DataFrame({"layer": ["conv4"], "delta": ["+0.0 [-37.5, +37.5] p=1"]})
    assert "| +0.0 [-37.5, +37.5] p=1 |" in to_markdown(frame)
    frame = pd.DataFrame({"layer": ["conv4"], "delta": ["-7.0 [-9.2, -4.9] p=<1e-4"]})
    assert "p=<1e-4 |" in to_markdown(frame)  # no tag can start at `<1`


def test_latex_escapes_every_special_character_once():
    tex = to_latex(_display(), caption=NAME)
    assert "<" not in tex.replace("\\begin", "") and ">" not in tex
    expected = (r"\textless{}svg onload=alert(3)\textgreater{} [x](javascript:y) "
                r"a\textbackslash{}b\{c\}\_\textasciitilde{}\textasciicircum{}\&")
    assert tex.count(expected) == 2  # the cell and the caption
