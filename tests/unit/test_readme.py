"""The docs stay true about configuration: every environment variable the code reads is in
docs/configuration.md, the one table of them."""

import importlib
import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic_settings import BaseSettings

from shared.platform.settings import PROJECT_ROOT

CONFIGURATION = PROJECT_ROOT / "docs" / "configuration.md"
#: The project's code (the virtualenvs inside it are skipped).
SOURCES = ("shared", "functions", "infra", "tools", "client/visionfn")
SKIPPED_FOLDERS = {".venv", "__pycache__", "static"}
SETTINGS_CLASS = re.compile(r"^class \w+\((?:Base)?\w*Settings\)", re.MULTILINE)
ENVIRONMENT_READ = re.compile(r"""os\.(?:environ\.get\(|environ\[|getenv\()\s*["']([A-Z][A-Z0-9_]*)["']""")


def source_files() -> Iterator[Path]:
    for folder in SOURCES:
        for root, folders, files in os.walk(PROJECT_ROOT / folder):
            folders[:] = sorted(name for name in folders if name not in SKIPPED_FOLDERS)
            yield from (Path(root) / name for name in sorted(files) if name.endswith(".py"))


def settings_classes() -> list[type[BaseSettings]]:
    """Every settings class the project declares (the platform's and each domain's), wherever it lives."""
    modules = set()
    for path in source_files():
        if SETTINGS_CLASS.search(path.read_text()):
            module = ".".join(path.relative_to(PROJECT_ROOT).with_suffix("").parts)
            importlib.import_module(module)
            modules.add(module)
    found, pending = [], list(BaseSettings.__subclasses__())
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        if cls.__module__ in modules and cls not in found:
            found.append(cls)
    return found


def environment_names(cls: type[BaseSettings]) -> list[str]:
    """The variable each field is read from (the first of its names when it has several)."""
    prefix = cls.model_config.get("env_prefix", "")
    names = []
    for name, field in cls.model_fields.items():
        alias = field.validation_alias
        if alias is None:
            names.append(f"{prefix}{name}".upper())
        elif isinstance(alias, str):
            names.append(alias)
        else:
            names.append(str(alias.choices[0]))
    return names


@pytest.fixture(scope="module")
def configuration() -> str:
    return CONFIGURATION.read_text()


def test_the_settings_classes_are_found():
    assert {cls.__name__ for cls in settings_classes()} >= {"Settings"}


def test_every_setting_is_in_the_configuration_page(configuration):
    for cls in settings_classes():
        for name in environment_names(cls):
            assert f"`{name}`" in configuration, f"{name} ({cls.__module__}.{cls.__name__}) is missing from docs/configuration.md"


def test_every_variable_read_directly_is_in_the_configuration_page(configuration):
    read = {(name, path.relative_to(PROJECT_ROOT)) for path in source_files() for name in ENVIRONMENT_READ.findall(path.read_text())}
    assert read, "no direct environment reads found: the pattern no longer matches the code"
    for name, path in sorted(read):
        assert f"`{name}`" in configuration, f"{name} (read in {path}) is missing from docs/configuration.md"
