"""The ``visionfn`` command: folders of pictures through the API, tasks watched, results downloaded.

Exit status: 0 when everything worked, 1 when a file, a task or a call failed (the rest is
still done), 2 for a usage or configuration problem.

Here: the parser and the entry point; what each command does is in commands.py.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from visionfn import __version__
from visionfn.client import Client
from visionfn.commands import (
    cmd_data,
    cmd_faces_anonymize,
    cmd_faces_detect,
    cmd_inspect,
    cmd_match,
    cmd_settings,
    cmd_tasks_download,
    cmd_tasks_get,
    cmd_tasks_list,
    cmd_tasks_watch,
    cmd_webhooks,
    print_error,
)
from visionfn.models import ApiError, VisionfnError, load_config, local_key_file


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
    anonymize.add_argument(
        "--profile", choices=["default", "thorough"], help="the fused detector's profile (thorough: more faces, more false positives)"
    )
    anonymize.add_argument("--hide", help="what to hide, a comma list of faces (the default), text, numbers (runs of >= 4 digits)")
    anonymize.set_defaults(run=cmd_faces_anonymize)
    detect = faces.add_parser("detect", help="count the faces of pictures")
    detect.add_argument("paths", nargs="+")
    detect.add_argument("--min-confidence", type=float)
    detect.add_argument("--detector", choices=["fused", "combined", "centerface", "retinaface", "mediapipe"])
    detect.add_argument(
        "--profile", choices=["default", "thorough"], help="the fused detector's profile (thorough: more faces, more false positives)"
    )
    detect.add_argument("--hide", help="what to hide, a comma list of faces (the default), text, numbers (runs of >= 4 digits)")
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
        print_error(str(error))
        return 2
    if not client.key:
        print_error('no API key: set VISIONFN_API_KEY, pass --key, or write key = "..." in ~/.config/visionfn/config.toml')
        return 2
    try:
        return args.run(client, args)
    except ApiError as error:
        print_error(f"the API answered {error}")
        return 1
    except VisionfnError as error:
        print_error(str(error))
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
