"""visionfn: a Python client for the visionfn HTTP API, and the ``visionfn`` command."""

from visionfn.client import Client
from visionfn.models import (
    AnonymizedImage,
    ApiError,
    Config,
    Task,
    TaskFailed,
    TaskPage,
    VisionfnError,
    WaitTimeout,
    load_config,
)

__all__ = [
    "AnonymizedImage",
    "ApiError",
    "Client",
    "Config",
    "Task",
    "TaskFailed",
    "TaskPage",
    "VisionfnError",
    "WaitTimeout",
    "load_config",
]
__version__ = "0.1.0"
