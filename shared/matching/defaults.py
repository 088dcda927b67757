"""Per-tool default parameters (``/api/v1/settings/{tool}``), stored in the database."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ValidationError

from shared.matching.tables import ToolSettings
from shared.matching.tool import ToolParams
from shared.matching.tools import TOOLS, tool_class
from shared.platform.db.engine import dialect_insert, session_scope
from shared.platform.db.models import utc_now
from shared.platform.errors import RequestValidationFailed


class ToolSettingsOut(BaseModel):
    tool: str
    params: dict[str, Any]


class ToolDefaults:
    def __init__(self, database_url: str | None = None) -> None:
        self.database_url = database_url

    def get(self, tool: str, owner: str) -> ToolParams:
        """The owner's stored defaults, or the tool's built-in ones when they stored none."""
        model = tool_class(tool).params_model
        with session_scope(self.database_url) as session:
            row = session.get(ToolSettings, (owner, tool))
            stored = dict(row.params) if row else {}
        return model.model_validate(stored)

    def put(self, tool: str, owner: str, payload: Any) -> ToolParams:
        """Replace the defaults; names left out take the built-in default. 422 on bad values."""
        params = _validated(tool, payload)
        with session_scope(self.database_url) as session:
            statement = dialect_insert(session, ToolSettings).values(
                owner=owner, tool=tool, params=params.model_dump(), updated_at=utc_now()
            )
            session.execute(
                statement.on_conflict_do_update(  # one statement: concurrent first PUTs do not collide
                    index_elements=[ToolSettings.owner, ToolSettings.tool],
                    set_={"params": statement.excluded.params, "updated_at": statement.excluded.updated_at},
                )
            )
        return params

    def resolve(self, tool: str, owner: str, given: dict[str, Any]) -> ToolParams:
        """A submission's parameters: what it gave over its owner's stored defaults. 422 on bad values."""
        return _validated(tool, over_defaults(self.get(tool, owner), given))

    def of_owner(self, owner: str) -> dict[str, ToolParams]:
        """Every tool's defaults for ``owner`` (``get`` of each): what a chain's steps resolve over."""
        return {tool: self.get(tool, owner) for tool in TOOLS}


def over_defaults(defaults: ToolParams, given: dict[str, Any]) -> dict[str, Any]:
    """The parameters ``given`` over ``defaults`` (the owner's stored ones, or the built-in ones),
    to be validated as the tool's model: the one rule a submission's and a chain step's
    parameters resolve by."""
    return {**defaults.model_dump(), **given}


def _validated(tool: str, payload: Any) -> ToolParams:
    """``payload`` as the tool's parameters; 422 in pydantic's shape (location "body") if not."""
    try:
        return tool_class(tool).params_model.model_validate(payload)
    except ValidationError as error:
        raise RequestValidationFailed.from_pydantic(error, "body") from error
