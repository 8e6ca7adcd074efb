"""The sections each benchmark writes into benchmarks/RESULTS.md between its own markers."""

from __future__ import annotations

from benchmarks.sections import write_section

BEGIN, END = "<!-- part -->", "<!-- /part -->"


def test_a_section_replaces_its_old_figures_and_leaves_the_rest(tmp_path):
    results = tmp_path / "RESULTS.md"
    results.write_text(f"# Results\n\nbefore\n\n{BEGIN}\nold figures\n{END}\n\nafter\n")
    write_section(f"{BEGIN}\nnew figures\n{END}", results, BEGIN, END)
    assert results.read_text() == f"# Results\n\nbefore\n\n{BEGIN}\nnew figures\n{END}\n\nafter\n"
    write_section(f"{BEGIN}\nnew figures\n{END}", results, BEGIN, END)  # again: the same file
    assert results.read_text().count("new figures") == 1


def test_a_section_without_markers_yet_is_added_at_the_end(tmp_path):
    results = tmp_path / "RESULTS.md"
    results.write_text("# Results\n\nother\n")
    write_section(f"{BEGIN}\nfigures\n{END}", results, BEGIN, END)
    assert results.read_text() == f"# Results\n\nother\n\n{BEGIN}\nfigures\n{END}\n"
