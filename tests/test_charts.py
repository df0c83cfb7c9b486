"""Charts draw the catalogue's thresholds: an IMSNB_THRESHOLD_* override moves the line with the finding."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd

from imsnb import charts


def cpu_frame() -> pd.DataFrame:
    start = datetime(2026, 11, 29, tzinfo=UTC)
    return pd.DataFrame(
        {
            "timestamp": [start + timedelta(minutes=i) for i in range(5)],
            "metric": "CPUUtilization",
            "dimension": "DBInstanceIdentifier=ims-postgres-db",
            "value": [40.0, 50.0, 60.0, 85.0, 95.0],
        }
    )


def threshold_lines(fig) -> list[float]:
    (ax,) = fig.axes
    return [line.get_ydata()[0] for line in ax.get_lines() if line.get_linestyle() == "--"]


def test_a_chart_draws_its_checks_threshold_and_follows_an_override(monkeypatch):
    assert threshold_lines(charts.timeseries_chart(cpu_frame(), "CPUUtilization", check="aws.rds.cpu")) == [80.0]
    monkeypatch.setenv("IMSNB_THRESHOLD_AWS_RDS_CPU", "70")
    fig = charts.timeseries_chart(cpu_frame(), "CPUUtilization", check="aws.rds.cpu", unit="%")
    assert threshold_lines(fig) == [70.0]
    (ax,) = fig.axes
    assert "threshold 70%" in [t.get_text() for t in ax.get_legend().get_texts()]


def test_a_chart_without_data_says_so_instead_of_drawing_nothing():
    fig = charts.timeseries_chart(cpu_frame().iloc[0:0], "CPUUtilization", check="aws.rds.cpu")
    (ax,) = fig.axes
    assert any("no CPUUtilization datapoints" in t.get_text() for t in ax.texts)


def test_query_text_with_parameters_is_drawn_as_written_not_as_math():
    """Matplotlib renders the text between two `$` as math: `WHERE id = $1 AND n > $2` lost its spaces and showed
    its parameters as if they were constants. The label keeps every `$`, escaped, and is not math."""
    from matplotlib import cbook

    query = "SELECT * FROM t WHERE id = $1 AND n > $2"
    statements = pd.DataFrame({"query": [query], "total_ms": [5000.0], "mean_ms": [250.0]})
    fig = charts.top_statements_chart(statements)
    fig.canvas.draw()  # the labels as they are drawn
    (ax,) = fig.axes
    (label,) = [t.get_text() for t in ax.get_yticklabels()]
    assert label == r"SELECT * FROM t WHERE id = \$1 AND n > \$2" and not cbook.is_math_text(label)


def test_a_name_the_font_cannot_draw_leaves_no_warning_in_the_report(capsys):
    """A table named in CJK or emoji is drawn as boxes by the bundled font; Matplotlib's warning about each glyph
    went into the report as a stray 'UserWarning: Glyph … missing' output."""
    import warnings

    from imsnb.report import show

    statements = pd.DataFrame({"query": ["SELECT * FROM ünïcødé_表_🔥"], "total_ms": [5000.0], "mean_ms": [250.0]})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        show(charts.top_statements_chart(statements), "statements")
    assert [str(w.message) for w in caught] == []
    assert "<chart: statements>" in capsys.readouterr().out
