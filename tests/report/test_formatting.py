"""microgpt/report/formatting.py: a figure, a duration and a Markdown table as the report writes them."""

from microgpt.report.formatting import fmt, fmt_time, table


def test_a_duration_takes_the_unit_that_keeps_it_short():
    assert fmt_time(2.5e-4) == "250.0 µs"
    assert fmt_time(0.0123) == "12.30 ms"
    assert fmt_time(12.345) == "12.35 s"
    assert fmt_time(1800) == "30.0 min"  # a full-run estimate of scripts/benchmark_train.py


def test_a_figure_has_three_significant_digits_and_separators_from_1000():
    assert (fmt(None), fmt(0), fmt(0.012345), fmt(12345.6)) == ("n/a", "0", "0.0123", "12,346")


def test_a_table_aligns_the_first_column_left_and_the_rest_right_unless_told():
    assert table(["a", "b"], [[1, 2]]) == ["| a | b |", "| --- | ---: |", "| 1 | 2 |"]
    assert table(["a", "b"], [], "rl")[1] == "| ---: | --- |"
