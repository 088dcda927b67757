"""The analysis of recent inspection records, computed here (no external service): counts per
label, the daily trend, the defect rate and the outliers, with a plain-language summary.
Pure: records in, a typed summary out."""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import Literal

import numpy as np
from pydantic import BaseModel, Field

from shared.defects.queries import RecordOut

#: An image whose class confidence is below this is an outlier ("low confidence").
LOW_CONFIDENCE = 0.5
#: Tukey's fence on the defect count: Q3 + 1.5 x IQR, with the IQR taken as at least one defect
#: (counts are integers: without it, a batch of ones would make every two an outlier).
FENCE_FACTOR, MIN_SPREAD = 1.5, 1.0
#: At most this many outliers are listed (the most extreme first), and this many days of trend.
MAX_OUTLIERS, MAX_TREND_DAYS = 20, 366
#: A trend whose fitted change over the window is under this share of the mean is "flat".
FLAT_SHARE = 0.1


class LabelCount(BaseModel):
    label: str
    records: int
    share: float = Field(description="Share of the records, 0..1")
    defects: int = Field(description="Defects found on the images of this class")
    mean_dice: float


class DayTrend(BaseModel):
    date: str = Field(description="YYYY-MM-DD (UTC)")
    records: int
    defects: int
    defects_per_record: float | None = Field(description="null on a day without records")


class Trend(BaseModel):
    direction: Literal["rising", "falling", "flat", "unknown"]
    slope: float | None = Field(description="Fitted change of defects per record per day (least squares over the days with records)")


class Outlier(BaseModel):
    figId: int
    name: str
    date: str
    time: str
    label: str
    num: int
    dice: float
    reasons: list[str]


class Analysis(BaseModel):
    """A summary of the caller's most recent records."""

    records: int = Field(description="Records analysed (the newest `limit`)")
    first: str | None = Field(description="Date and time of the oldest of them (UTC)")
    last: str | None = Field(description="Date and time of the newest of them (UTC)")
    defects: int = Field(description="Defects found on them in all")
    defect_rate: float = Field(description="Share of the images with at least one defect located, 0..1")
    defects_per_record: float
    mean_dice: float = Field(description="Mean class confidence")
    by_label: list[LabelCount] = Field(description="Most frequent class first")
    daily: list[DayTrend] = Field(description="Every day from the first record's to the last's (at most 366, the newest), oldest first")
    trend: Trend
    defect_count_fence: float | None = Field(description="Defect counts above this are outliers (Q3 + 1.5 x max(IQR, 1))")
    outliers: list[Outlier] = Field(description=f"At most {MAX_OUTLIERS}, most defects first")
    summary: str = Field(description="The figures above in a few sentences (computed here)")
    narrative: str | None = Field(None, description="Written by the configured language model, when one is configured and answered")
    narrative_source: Literal["computed", "llm"] = Field("computed", description="`llm` when `narrative` came from the model")
    narrative_error: str | None = Field(None, description="Why the configured model gave no narrative (the summary stands)")


def analyse(records: Sequence[RecordOut]) -> Analysis:
    """The figures of ``records`` (any order)."""
    if not records:
        return Analysis(
            records=0,
            first=None,
            last=None,
            defects=0,
            defect_rate=0.0,
            defects_per_record=0.0,
            mean_dice=0.0,
            by_label=[],
            daily=[],
            trend=Trend(direction="unknown", slope=None),
            defect_count_fence=None,
            outliers=[],
            summary="No inspection records yet.",
        )
    ordered = sorted(records, key=lambda record: (record.date, record.time, record.figId))
    nums = np.array([record.num for record in ordered], dtype=float)
    dice = np.array([record.dice for record in ordered], dtype=float)
    daily = daily_trend(ordered)
    fence = defect_count_fence(nums)
    analysis = Analysis(
        records=len(ordered),
        first=f"{ordered[0].date} {ordered[0].time}",
        last=f"{ordered[-1].date} {ordered[-1].time}",
        defects=int(nums.sum()),
        defect_rate=round(float((nums > 0).mean()), 4),
        defects_per_record=round(float(nums.mean()), 4),
        mean_dice=round(float(dice.mean()), 4),
        by_label=label_counts(ordered),
        daily=daily,
        trend=trend_of(daily),
        defect_count_fence=round(fence, 4),
        outliers=outliers(ordered, fence),
        summary="",
    )
    return analysis.model_copy(update={"summary": summarise(analysis)})


def label_counts(records: Sequence[RecordOut]) -> list[LabelCount]:
    counts = Counter(record.label for record in records)
    defects: dict[str, int] = defaultdict(int)
    confidence: dict[str, float] = defaultdict(float)
    for record in records:
        defects[record.label] += record.num
        confidence[record.label] += record.dice
    return [
        LabelCount(
            label=label,
            records=count,
            share=round(count / len(records), 4),
            defects=defects[label],
            mean_dice=round(confidence[label] / count, 4),
        )
        for label, count in sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    ]


def daily_trend(records: Sequence[RecordOut]) -> list[DayTrend]:
    """Every day from the first record's to the last's (the newest MAX_TREND_DAYS), empty days too."""
    per_day: dict[str, list[int]] = defaultdict(list)
    for record in records:
        per_day[record.date].append(record.num)
    last = dt.date.fromisoformat(max(per_day))
    first = max(dt.date.fromisoformat(min(per_day)), last - dt.timedelta(days=MAX_TREND_DAYS - 1))
    days = []
    for offset in range((last - first).days + 1):
        day = (first + dt.timedelta(days=offset)).isoformat()
        nums = per_day.get(day, [])
        days.append(
            DayTrend(date=day, records=len(nums), defects=sum(nums), defects_per_record=round(sum(nums) / len(nums), 4) if nums else None)
        )
    return days


def trend_of(daily: Sequence[DayTrend]) -> Trend:
    """Least-squares slope of defects per record against the day, over the days with records."""
    points = [(index, day.defects_per_record) for index, day in enumerate(daily) if day.defects_per_record is not None]
    if len(points) < 2:
        return Trend(direction="unknown", slope=None)
    x = np.array([point[0] for point in points], dtype=float)
    y = np.array([point[1] for point in points], dtype=float)
    slope = float(np.polyfit(x, y, 1)[0])
    change = slope * (x[-1] - x[0])
    mean = float(y.mean())
    if abs(change) <= FLAT_SHARE * max(mean, 1e-9):
        direction: Literal["rising", "falling", "flat"] = "flat"
    else:
        direction = "rising" if change > 0 else "falling"
    return Trend(direction=direction, slope=round(slope, 6))


def defect_count_fence(nums: np.ndarray) -> float:
    q1, q3 = np.percentile(nums, [25, 75])
    return float(q3 + FENCE_FACTOR * max(q3 - q1, MIN_SPREAD))


def outliers(records: Sequence[RecordOut], fence: float) -> list[Outlier]:
    found = []
    for record in records:
        reasons = []
        if record.num > fence:
            reasons.append(f"{record.num} defects, above the fence of {fence:g}")
        if record.dice < LOW_CONFIDENCE:
            reasons.append(f"class confidence {record.dice:.2f}, below {LOW_CONFIDENCE:g}")
        if reasons:
            found.append(
                Outlier(
                    figId=record.figId,
                    name=record.name,
                    date=record.date,
                    time=record.time,
                    label=record.label,
                    num=record.num,
                    dice=record.dice,
                    reasons=reasons,
                )
            )
    found.sort(key=lambda outlier: (-outlier.num, outlier.dice, -outlier.figId))
    return found[:MAX_OUTLIERS]


def summarise(analysis: Analysis) -> str:
    top = analysis.by_label[0]
    sentences = [
        f"{analysis.records} records from {analysis.first} to {analysis.last} UTC: {analysis.defects} defects, "
        f"{analysis.defects_per_record:.2f} per image; {analysis.defect_rate:.0%} of the images have at least one.",
        f"Most frequent class: {top.label} ({top.records} records, {top.share:.0%})"
        + (f", then {analysis.by_label[1].label} ({analysis.by_label[1].share:.0%})." if len(analysis.by_label) > 1 else "."),
        f"Mean class confidence {analysis.mean_dice:.2f}.",
    ]
    if analysis.trend.direction in ("rising", "falling"):
        sentences.append(f"Defects per image are {analysis.trend.direction} over the {len(analysis.daily)} days.")
    elif analysis.trend.direction == "flat":
        sentences.append(f"Defects per image are steady over the {len(analysis.daily)} days.")
    if analysis.outliers:
        sentences.append(f"{len(analysis.outliers)} outlier(s), e.g. {analysis.outliers[0].name}: {analysis.outliers[0].reasons[0]}.")
    else:
        sentences.append("No outliers.")
    return " ".join(sentences)
