"""Defect inspection benchmark: inference per image, batch throughput through the gateway, and
the data service's endpoints over 100k records in Postgres, with their query plans.

    make bench            (or: .venv/bin/python -m tests.bench.bench_defects [--rows 100000] [--runs 50])

In process: the model alone (``DefectModel.inspect``) and the whole per-image work of
POST /api/detect (decode, model, annotated PNG), medians of ``--runs``, on a real NEU-DET
picture at 200x200 and scaled to 1920x1080 (the model runs on one thread, as it loads).
Then its own platform (Postgres from DATABASE_URL or a throwaway cluster): batches of 16
through the gateway (images/s), ``--rows`` records of one owner (and a tenth as many of
others) spread over the last year, ANALYZE, each data endpoint's p50/p95 through the
gateway, and EXPLAIN ANALYZE of the SQL each one runs.
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import os
import random
import statistics
import time
import uuid

import numpy as np
from PIL import Image
from sqlalchemy import insert, text
from sqlalchemy.dialects import postgresql

from shared.defects.inspection import inspect_image
from shared.defects.model import LABELS, DefectModel
from shared.defects.queries import PageQuery, SearchQuery
from shared.defects.records import DefectRecord, recent_statement, search_statements, stat_statement
from shared.platform.db.engine import get_engine, session_scope
from shared.platform.db.migrate import upgrade
from shared.platform.keys import ApiKeys
from tests.conftest import SHARED_DATA
from tests.platform import running_platform
from tests.postgres import postgres_url

NEU_IMAGES = SHARED_DATA / "defects" / "neu_det" / "images"
BENCH_OWNER = "bench-defects"


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def median_ms(run, runs: int) -> float:
    run()  # warm
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        run()
        times.append((time.perf_counter() - started) * 1000)
    return round(statistics.median(times), 2)


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def inference(runs: int) -> dict:
    path = sorted(NEU_IMAGES.glob("scratches_*.jpg"))[0]
    small = Image.open(path).convert("L")
    large = small.resize((1920, 1080))
    model = DefectModel.load()
    report = {}
    for name, picture in (("200x200", small), ("1920x1080", large)):
        pixels = np.asarray(picture)
        data = _png(picture)
        report[name] = {
            "model_ms": median_ms(lambda pixels=pixels: model.inspect(pixels), runs),
            "decode_model_annotate_ms": median_ms(lambda data=data: inspect_image(model, data, "x.png", 50_000_000), runs),
            "png_kib": len(data) // 1024,
        }
    return report


def batch_throughput(platform, batches: int) -> dict:
    paths = sorted(NEU_IMAGES.glob("*.jpg"))
    rng = random.Random(7)
    session = platform.http
    url = f"{platform.gateway}/api/detect"
    session.post(url, files=[("images", (p.name, p.read_bytes())) for p in paths[:2]], timeout=120).raise_for_status()
    times = []
    for _ in range(batches):
        files = [("images", (p.name, p.read_bytes())) for p in rng.sample(paths, 16)]
        started = time.perf_counter()
        response = session.post(url, files=files, timeout=300)
        response.raise_for_status()
        assert len(response.json()) == 16
        times.append(time.perf_counter() - started)
    return {
        "request": f"POST /api/detect with 16 NEU-DET JPEGs (200x200) x {batches}",
        "batch_p50_s": round(statistics.median(times), 3),
        "images_per_s": round(16 / statistics.median(times), 1),
        "per_image_ms": round(statistics.median(times) / 16 * 1000, 1),
    }


def stock_records(database_url: str, rows: int) -> None:
    """``rows`` records of BENCH_OWNER and rows/10 of other owners, over the last 365 days."""
    rng = random.Random(11)
    now = dt.datetime.now(dt.UTC)
    words = ["coil", "plate", "sheet", "strip", "line", "roll"]

    def row(owner: str, index: int) -> dict:
        moment = now - dt.timedelta(seconds=rng.uniform(0, 365 * 86400))
        return {
            "owner": owner,
            "name": f"{rng.choice(words)}_{index:06d}_{rng.choice(LABELS)}.jpg",
            "label": rng.choice(LABELS),
            "num": min(int(rng.expovariate(0.6)), 12),
            "dice": rng.uniform(0.3, 1.0),
            "created_at": moment,
            "created_day": moment.date(),
            "result_key": f"outputs/defects/api/{uuid.uuid4().hex}.png",
            "source_key": None,
            "source_etag": None,
            "defects": [],
            "processing_time_ms": 5,
        }

    everyone = [(BENCH_OWNER, n) for n in range(rows)] + [(f"other-{n % 10}", n) for n in range(rows // 10)]
    with session_scope(database_url) as session:
        for start in range(0, len(everyone), 5000):
            session.execute(insert(DefectRecord), [row(owner, index) for owner, index in everyone[start : start + 5000]])
    with get_engine(database_url).connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text("VACUUM ANALYZE defect_records"))  # what autovacuum does after a bulk load


def endpoint_latency(platform, http, runs: int) -> dict:
    today = dt.datetime.now(dt.UTC).date()
    month_ago = today - dt.timedelta(days=30)
    cases = {
        "getRecent (limit 120)": "/api/data/getRecent",
        "getRecent (limit 1000)": "/api/data/getRecent?limit=1000",
        "statByDate (last 15 days)": "/api/data/statByDate",
        "statByDate (366 days)": f"/api/data/statByDate?startDate={today - dt.timedelta(days=365)}&endDate={today}",
        "getPaginated (page 1 of 20)": "/api/data/getPaginated?limit=20&page=1",
        "getPaginated (page 2000 of 20)": "/api/data/getPaginated?limit=20&page=2000",
        "search (no condition)": "/api/data/search",
        "search (name=coil_0123)": "/api/data/search?name=coil_0123",
        "search (name=scale)": "/api/data/search?name=scale",
        "search (num=3)": "/api/data/search?num=3",
        "search (last 30 days)": f"/api/data/search?startDate={month_ago}&endDate={today}",
        "search (name + num + 30 days)": f"/api/data/search?name=plate&num=1&startDate={month_ago}&endDate={today}",
        "analysis (limit 120)": "/api/data/analysis",
    }
    report = {}
    for name, path in cases.items():
        url = f"{platform.gateway}{path}"
        http.get(url, timeout=30).raise_for_status()
        times = []
        for _ in range(runs):
            started = time.perf_counter()
            response = http.get(url, timeout=30)
            response.raise_for_status()
            times.append((time.perf_counter() - started) * 1000)
        body = response.json()
        size = body["total"] if isinstance(body, dict) and "total" in body else len(body) if isinstance(body, list) else body.get("records")
        report[name] = {"p50_ms": round(statistics.median(times), 1), "p95_ms": round(percentile(times, 0.95), 1), "result": size}
    return report


def query_plans(database_url: str) -> dict[str, str]:
    """EXPLAIN ANALYZE of the statements the data endpoints run (values inlined)."""
    today = dt.datetime.now(dt.UTC).date()
    month_ago = today - dt.timedelta(days=30)
    search = SearchQuery.model_validate({"name": "plate", "num": "1", "startDate": str(month_ago), "endDate": str(today)})
    statements = {
        "getRecent": recent_statement(BENCH_OWNER, 120),
        "statByDate (15 days)": stat_statement(BENCH_OWNER, today - dt.timedelta(days=14), today),
        "statByDate (366 days)": stat_statement(BENCH_OWNER, today - dt.timedelta(days=365), today),
        "search count (no condition)": search_statements(BENCH_OWNER, SearchQuery())[0],
        "search page (page 2000)": search_statements(BENCH_OWNER, PageQuery(limit=20, page=2000))[1],
        "search count (name=coil_0123)": search_statements(BENCH_OWNER, SearchQuery(name="coil_0123"))[0],
        "search page (name=coil_0123)": search_statements(BENCH_OWNER, SearchQuery(name="coil_0123"))[1],
        "search count (name=scale)": search_statements(BENCH_OWNER, SearchQuery(name="scale"))[0],
        "search page (name=scale)": search_statements(BENCH_OWNER, SearchQuery(name="scale"))[1],
        "search count (num=3)": search_statements(BENCH_OWNER, SearchQuery(num=3))[0],
        "search count (name + num + 30 days)": search_statements(BENCH_OWNER, search)[0],
        "search page (name + num + 30 days)": search_statements(BENCH_OWNER, search)[1],
    }
    plans = {}
    with get_engine(database_url).connect() as connection:
        for name, statement in statements.items():
            sql = str(statement.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}))
            plans[name] = "\n".join(row[0] for row in connection.execute(text(f"EXPLAIN (ANALYZE, BUFFERS) {sql}")))
    return plans


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--batches", type=int, default=8)
    parser.add_argument("--rows", type=int, default=100_000)
    options = parser.parse_args()
    report: dict = {"machine": f"{os.cpu_count()} cores", "inference": inference(options.runs)}
    with postgres_url() as database_url:
        upgrade(database_url)
        with running_platform(database_url, name="bench-defects") as platform:
            report["batch_throughput"] = batch_throughput(platform, options.batches)
            started = time.perf_counter()
            stock_records(database_url, options.rows)
            report["stocked"] = {"rows": options.rows + options.rows // 10, "seconds": round(time.perf_counter() - started, 1)}
            _record, key = ApiKeys(database_url).create(BENCH_OWNER, "bench")
            http = type(platform.http)()
            http.headers["Authorization"] = f"Bearer {key}"
            report["data_endpoints_through_the_gateway"] = endpoint_latency(platform, http, options.runs)
            plans = query_plans(database_url)
    print(json.dumps(report, indent=2))
    for name, plan in plans.items():
        print(f"\n--- EXPLAIN ANALYZE: {name}\n{plan}")


if __name__ == "__main__":
    main()
