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
