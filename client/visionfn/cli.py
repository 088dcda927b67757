"""The ``visionfn`` command: folders of pictures through the API, tasks watched, results downloaded.

Exit status: 0 when everything worked, 1 when a file, a task or a call failed (the rest is
still done), 2 for a usage or configuration problem.
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

from visionfn import __version__
from visionfn.client import Client
from visionfn.models import ApiError, Task, VisionfnError, load_config, local_key_file
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


def _fail(message: str) -> None:
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
        _fail(f"{image}: {error}")
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
            report = client.detect_faces(image, min_confidence=args.min_confidence, detector=args.detector)
        except (VisionfnError, OSError) as error:
            _fail(f"{image}: {error}")
            failed += 1
            continue
        print(f"{image}: {report['total_count']} faces")
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
        _fail(f"{image}: {error}")
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


# --- the parser ---------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="visionfn",
        description="The visionfn API from the command line. "
        "URL: --url, VISIONFN_URL or ~/.config/visionfn/config.toml (url = ...); "
        "key: --key, VISIONFN_API_KEY or the config file (key = ...).",
    )
    parser.add_argument("--url", help="API base URL (default http://127.0.0.1:8888)")
    parser.add_argument("--key", help="API key (better: VISIONFN_API_KEY or the config file)")
    parser.add_argument("--version", action="version", version=f"visionfn {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    faces = commands.add_parser("faces", help="face privacy").add_subparsers(dest="action", required=True)
    anonymize = faces.add_parser("anonymize", help="hide every face of pictures or folders of pictures")
    anonymize.add_argument("paths", nargs="+")
    anonymize.add_argument("--out", required=True, help="folder for the anonymized pictures")
    anonymize.add_argument("--mode", choices=["blur", "pixelate", "solid"])
    anonymize.add_argument("--shape", choices=["ellipse", "rectangle"])
    anonymize.add_argument("--margin", type=float, help="0-1: how far past the face box to hide (the strength)")
    anonymize.add_argument("--min-confidence", type=float)
    anonymize.add_argument("--draw-boxes", action="store_true")
    anonymize.add_argument("--format", choices=["jpeg", "png", "webp"])
    anonymize.add_argument("--detector", choices=["fused", "combined", "centerface", "retinaface", "mediapipe"])
    anonymize.set_defaults(run=cmd_faces_anonymize)
    detect = faces.add_parser("detect", help="count the faces of pictures")
    detect.add_argument("paths", nargs="+")
    detect.add_argument("--min-confidence", type=float)
    detect.add_argument("--detector", choices=["fused", "combined", "centerface", "retinaface", "mediapipe"])
    detect.set_defaults(run=cmd_faces_detect)

    match = commands.add_parser("match", help="2D/3D matching tasks").add_subparsers(dest="tool", required=True)
    for tool, first, second in (
        ("template", "image", "template"),
        ("feature", "query_image", "train_image"),
        ("surface", "model_file", "scene_file"),
        ("chain", "image", "template"),
    ):
        sub = match.add_parser(tool, help=f"queue {tool} matching, wait, print the result")
        sub.add_argument("first", metavar=first)
        sub.add_argument("second", metavar=second)
        if tool == "chain":
            sub.add_argument("--steps", required=True, help='JSON list: [{"tool":"template","params":{...}}, ...] or @file')
            sub.set_defaults(param=[])
        else:
            sub.add_argument(
                "-p", "--param", action="append", default=[], metavar="NAME=VALUE", help="a parameter (repeatable), e.g. -p threshold=0.9"
            )
        sub.add_argument("--out", help="download the result files into this folder")
        sub.add_argument("--no-wait", action="store_true", help="print the task's uid and return")
        sub.add_argument("--json", action="store_true", help="print the whole task as JSON")
        sub.set_defaults(run=cmd_match)

    tasks = commands.add_parser("tasks", help="matching tasks").add_subparsers(dest="action", required=True)
    listing = tasks.add_parser("list", help="the newest tasks")
    listing.add_argument("--limit", type=int, default=20)
    listing.add_argument("--offset", type=int, default=0)
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(run=cmd_tasks_list)
    get = tasks.add_parser("get", help="one task as JSON")
    get.add_argument("uid")
    get.set_defaults(run=cmd_tasks_get)
    watch = tasks.add_parser("watch", help="follow a task (or every unfinished task) until it ends")
    watch.add_argument("uid", nargs="?")
    watch.add_argument("--interval", type=float, default=1.0)
    watch.add_argument("--limit", type=int, default=50)
    watch.set_defaults(run=cmd_tasks_watch)
    download = tasks.add_parser("download", help="a task's result files")
    download.add_argument("uid")
    download.add_argument("--out", required=True)
    download.set_defaults(run=cmd_tasks_download)

    settings = commands.add_parser("settings", help="per-tool defaults")
    settings.add_argument("action", choices=["get", "put"])
    settings.add_argument("tool", choices=["template", "feature", "surface"])
    settings.add_argument("-p", "--param", action="append", default=[], metavar="NAME=VALUE")
    settings.set_defaults(run=cmd_settings)

    hooks = commands.add_parser("webhooks", help="webhooks").add_subparsers(dest="action", required=True)
    hooks.add_parser("list").set_defaults(run=cmd_webhooks)
    add = hooks.add_parser("add")
    add.add_argument("url")
    add.add_argument("--secret")
    add.add_argument("--event", action="append", choices=["task.done", "task.error"])
    add.add_argument("--description", default="")
    add.set_defaults(run=cmd_webhooks)
    for action in ("delete", "deliveries", "redeliver", "ping"):
        sub = hooks.add_parser(action)
        sub.add_argument("id")
        if action == "redeliver":
            sub.add_argument("delivery")
        sub.add_argument("--limit", type=int, default=20)
        sub.set_defaults(run=cmd_webhooks)

    inspect = commands.add_parser("inspect", help="surface-defect inspection of pictures or folders")
    inspect.add_argument("paths", nargs="+")
    inspect.add_argument("--out", help="folder for the annotated pictures (<name>.png)")
    inspect.add_argument("--batch", type=int, default=8, help="images per request (at most the API's limit, 32)")
    inspect.add_argument("-v", "--verbose", action="store_true", help="a line per image")
    inspect.set_defaults(run=cmd_inspect)

    data = commands.add_parser("data", help="inspection records")
    data.add_argument("action", choices=["recent", "stats", "search", "analysis"])
    data.add_argument("--limit", type=int, default=20)
    data.add_argument("--page", type=int, default=1)
    data.add_argument("--name")
    data.add_argument("--num", type=int)
    data.add_argument("--start", help="YYYY-MM-DD")
    data.add_argument("--end", help="YYYY-MM-DD")
    data.set_defaults(run=cmd_data)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        config = load_config(args.url, args.key)
        key = config.key
        if not key and (found := local_key_file(config.url)):  # `make up`'s key, in this checkout
            key = found.read_text().strip()
            print(f"visionfn: no API key given: using the local platform's, {found}", file=sys.stderr)
        client = Client(config.url, key)
    except (VisionfnError, OSError) as error:
        _fail(str(error))
        return 2
    if not client.key:
        _fail('no API key: set VISIONFN_API_KEY, pass --key, or write key = "..." in ~/.config/visionfn/config.toml')
        return 2
    try:
        return args.run(client, args)
    except ApiError as error:
        _fail(f"the API answered {error}")
        return 1
    except VisionfnError as error:
        _fail(str(error))
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
