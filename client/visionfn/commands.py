"""What each ``visionfn`` command does, given the API client and its parsed arguments (the parser
and the entry point are in cli.py): pictures and folders collected, tasks watched, results
written. A handler returns the exit status: 0 when everything worked, 1 when a file, a task or a
call failed (the rest is still done).
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from visionfn.client import Client
from visionfn.models import Task, VisionfnError
from visionfn.progress import Progress

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif"}
VIDEO_SUFFIXES = {".mp4", ".m4v", ".mov", ".webm"}


def collect_images(paths: Sequence[str], suffixes: set[str] = IMAGE_SUFFIXES) -> list[Path]:
    """Files named on the command line, and the pictures (by extension) inside folders, sorted."""
    found: list[Path] = []
    for name in paths:
        path = Path(name)
        if path.is_dir():
            found.extend(
                sorted(
                    item
                    for item in path.rglob("*")
                    if item.is_file()
                    and item.suffix.lower() in suffixes
                    and not any(part.startswith(".") for part in item.relative_to(path).parts)
                )
            )
        elif path.is_file():
            found.append(path)
        else:
            raise SystemExit(f"visionfn: {name}: no such file or folder")
    return found


def parse_params(pairs: Iterable[str]) -> dict[str, Any]:
    """``-p name=value``: the value as JSON when it parses (numbers, true/false), else the text."""
    params: dict[str, Any] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise SystemExit(f"visionfn: a parameter is name=value, not {pair!r}")
        try:
            params[name] = json.loads(value)
        except json.JSONDecodeError:
            params[name] = value
    return params


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, default=str))


def print_error(message: str) -> None:
    print(f"visionfn: {message}", file=sys.stderr)


def _task_line(task: Task) -> str:
    summary = ""
    data = task.result_data or {}
    if task.status == "error":
        summary = f"  {task.error}"
    elif task.tool == "template" and data:
        summary = f"  matches={data.get('filtered_matches')} best_score={data.get('best_score')}"
    elif task.tool == "feature" and data:
        summary = f"  good_matches={data.get('good_matches')} located={data.get('located')}"
    elif task.tool == "surface" and data:
        summary = f"  poses_found={data.get('poses_found')}"
    elif task.tool == "chain" and data:
        summary = f"  {data.get('chain_result')} at step {data.get('completed_step')}/{data.get('total_steps')}"
    return f"{task.uid}  {task.tool:<8} {task.status:<10}{summary}"


# --- faces --------------------------------------------------------------------------------


def cmd_faces_anonymize(client: Client, args: argparse.Namespace) -> int:
    images = collect_images(args.paths, IMAGE_SUFFIXES | VIDEO_SUFFIXES)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    options = {
        "mode": args.mode,
        "shape": args.shape,
        "margin": args.margin,
        "min_confidence": args.min_confidence,
        "detector": args.detector,
        "profile": args.profile,
        "hide": args.hide,
    }
    picture_options = {**options, "draw_boxes": True if args.draw_boxes else None, "format": args.format}
    progress = Progress(len(images), "anonymize")
    failures, faces = [], 0
    for image in images:
        if image.suffix.lower() in VIDEO_SUFFIXES:
            try:
                faces += anonymize_video(client, image, out, options, progress)
            except (VisionfnError, OSError) as error:
                failures.append((image, error))
                progress.advance(ok=False, note=image.name)
            else:
                progress.advance(note=image.name)
            continue
        try:
            result = client.anonymize(image, **picture_options)
        except (VisionfnError, OSError) as error:
            failures.append((image, error))
            progress.advance(ok=False, note=image.name)
            continue
        (out / (image.stem + result.extension)).write_bytes(result.content)
        faces += result.faces_count
        progress.advance(note=image.name)
    progress.close()
    for image, error in failures:
        print_error(f"{image}: {error}")
    print(f"{len(images) - len(failures)} of {len(images)} anonymized into {out} ({faces} faces); {len(failures)} failed")
    return 1 if failures else 0


def anonymize_video(client: Client, video: Path, out: Path, options: dict[str, Any], progress: Progress | None = None) -> int:
    """A video as a face_video task: waited for, its mp4 written as <name>.mp4; the most faces in a frame.
    The progress line says what the video is waiting for (sent, then each status of its task)."""

    def show(note: str) -> None:
        if progress is not None:
            progress.show(f"{video.name}: {note}")

    show(f"sending {video.stat().st_size / 1e6:.1f} MB")
    task = client.wait(client.anonymize_video(video, **options), raise_on_error=True, on_update=lambda current: show(current.status))
    for key in task.result_files:
        client.download(key, out / f"{video.stem}{Path(key).suffix or '.mp4'}")
    return int((task.result_data or {}).get("faces_max") or 0)


def cmd_faces_detect(client: Client, args: argparse.Namespace) -> int:
    failed = 0
    for image in collect_images(args.paths):
        try:
            report = client.detect_faces(
                image, min_confidence=args.min_confidence, detector=args.detector, profile=args.profile, hide=args.hide
            )
        except (VisionfnError, OSError) as error:
            print_error(f"{image}: {error}")
            failed += 1
            continue
        text = f", {report['text_count']} text regions" if "text_count" in report else ""
        print(f"{image}: {report['total_count']} faces{text}")
    return 1 if failed else 0


# --- matching -----------------------------------------------------------------------------


def _finish_task(client: Client, task: Task, args: argparse.Namespace) -> int:
    if args.no_wait:
        print(task.uid)
        return 0
    task = client.wait(task, on_update=lambda current: print(f"{current.uid} {current.status}", file=sys.stderr))
    if args.json:
        _print_json(task.raw)
    else:
        print(_task_line(task))
    if args.out and task.status == "done":
        for path in client.download_results(task, args.out):
            print(f"  saved {path}")
    return 0 if task.status == "done" else 1


def cmd_match(client: Client, args: argparse.Namespace) -> int:
    params = parse_params(args.param)
    if args.tool == "template":
        task = client.match_template(args.first, args.second, **params)
    elif args.tool == "feature":
        task = client.match_feature(args.first, args.second, **params)
    elif args.tool == "surface":
        task = client.match_surface(args.first, args.second, **params)
    else:
        steps = args.steps
        if steps.startswith("@"):
            steps = Path(steps[1:]).read_text()
        task = client.match_chain(args.first, args.second, steps)
    return _finish_task(client, task, args)


# --- tasks --------------------------------------------------------------------------------


def cmd_tasks_list(client: Client, args: argparse.Namespace) -> int:
    page = client.tasks(offset=args.offset, limit=args.limit)
    if args.json:
        _print_json({"total": page.total, "tasks": [task.raw for task in page.tasks]})
        return 0
    print(f"{page.total} tasks (showing {len(page.tasks)})")
    for task in page.tasks:
        print(f"{task.created_at or '':<32} {_task_line(task)}")
    return 0


def cmd_tasks_get(client: Client, args: argparse.Namespace) -> int:
    _print_json(client.task(args.uid).raw)
    return 0


def cmd_tasks_watch(client: Client, args: argparse.Namespace) -> int:
    """One task until it ends; without a uid, every unfinished task among the newest until all end."""
    if args.uid:
        task = client.wait(
            args.uid, interval=args.interval, max_interval=args.interval, on_update=lambda current: print(_task_line(current), flush=True)
        )
        return 0 if task.status == "done" else 1
    seen: dict[str, str] = {}
    failed = 0
    while True:
        page = client.tasks(limit=args.limit)
        pending = 0
        for task in reversed(page.tasks):
            if task.status != seen.get(task.uid) and (task.uid in seen or not task.finished):
                print(_task_line(task), flush=True)
                failed += task.status == "error"
            if task.uid in seen or not task.finished:
                seen[task.uid] = task.status
            pending += not task.finished
        if pending == 0:
            print(f"no task queued or processing ({len(seen)} watched)")
            return 1 if failed else 0
        time.sleep(args.interval)


def cmd_tasks_download(client: Client, args: argparse.Namespace) -> int:
    task = client.task(args.uid)
    for path in client.download_results(task, args.out):
        print(path)
    return 0


# --- settings and webhooks ----------------------------------------------------------------


def cmd_settings(client: Client, args: argparse.Namespace) -> int:
    if args.action == "get":
        _print_json(client.get_settings(args.tool))
    else:
        _print_json(client.put_settings(args.tool, parse_params(args.param)))
    return 0


def cmd_webhooks(client: Client, args: argparse.Namespace) -> int:
    if args.action == "list":
        _print_json(client.webhooks())
    elif args.action == "add":
        _print_json(client.create_webhook(args.url, secret=args.secret, events=args.event or None, description=args.description))
    elif args.action == "delete":
        client.delete_webhook(args.id)
        print(f"deleted {args.id}")
    elif args.action == "deliveries":
        _print_json(client.deliveries(args.id, limit=args.limit))
    elif args.action == "redeliver":
        _print_json(client.redeliver(args.id, args.delivery))
    else:
        _print_json(client.ping_webhook(args.id))
    return 0


# --- inspection and data ------------------------------------------------------------------


def cmd_inspect(client: Client, args: argparse.Namespace) -> int:
    images = collect_images(args.paths)
    out = Path(args.out) if args.out else None
    if out:
        out.mkdir(parents=True, exist_ok=True)
    progress = Progress(len(images), "inspect")
    failures: list[tuple[Path, str]] = []
    defects = 0
    for start in range(0, len(images), args.batch):
        batch = images[start : start + args.batch]
        try:
            entries = client.inspect(batch)
        except (VisionfnError, OSError) as error:
            for image in batch:
                failures.append((image, str(error)))
                progress.advance(ok=False, note=image.name)
            continue
        for image, entry in zip(batch, entries, strict=False):
            if "error" in entry:
                failures.append((image, f"{entry.get('status', '')} {entry['error']}: {entry.get('details', '')}".strip()))
                progress.advance(ok=False, note=image.name)
                continue
            defects += int(entry.get("defect_count") or 0)
            if out and entry.get("result_image"):
                (out / f"{image.stem}.png").write_bytes(base64.b64decode(entry["result_image"]))
            if args.verbose:
                print(
                    f"{image}: {entry.get('labels')} ({entry.get('dice')}), {entry.get('defect_count')} defects, "
                    f"record {entry.get('figId')}"
                )
            progress.advance(note=image.name)
    progress.close()
    for image, error in failures:
        print_error(f"{image}: {error}")
    where = f" into {out}" if out else ""
    print(f"{len(images) - len(failures)} of {len(images)} inspected{where} ({defects} defects); {len(failures)} failed")
    return 1 if failures else 0


def cmd_data(client: Client, args: argparse.Namespace) -> int:
    if args.action == "recent":
        _print_json(client.recent_records(args.limit))
    elif args.action == "stats":
        _print_json(client.stats_by_date(args.start, args.end))
    elif args.action == "search":
        _print_json(
            client.search_records(name=args.name, num=args.num, start_date=args.start, end_date=args.end, page=args.page, limit=args.limit)
        )
    else:
        _print_json(client.analysis(args.limit))
    return 0
