"""The task-type registry: an instance, built explicitly by ``build_registry``."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

from pydantic import BaseModel, ValidationError

from ..domain.errors import InvalidParametersError, UnknownTaskTypeError
from ..domain.ports import TaskContext

TaskFunction = Callable[[Any, TaskContext], Any]


@dataclasses.dataclass(frozen=True)
class RegisteredTaskType:
    name: str
    description: str
    parameters_model: type[BaseModel]
    function: TaskFunction
    queue: str = "default"
    timeout_seconds: int = 60
    url_parameters: tuple[str, ...] = ()
    # saves checkpoints, so may run longer than one worker invocation (see TaskContext)
    checkpoints: bool = False
    # the running time the parameters need at least, when the type can tell
    runtime: Callable[[Any], float] | None = None
    # exceptions of the type's code that another attempt cannot fix: not retried
    permanent_errors: tuple[type[BaseException], ...] = (ValueError, TypeError)

    def runtime_needed(self, parameters: Mapping[str, Any]) -> float | None:
        if self.runtime is None:
            return None
        return self.runtime(self.parameters_model.model_validate(dict(parameters)))

    def validate(self, parameters: Mapping[str, Any]) -> dict[str, Any]:
        try:
            model = self.parameters_model.model_validate(dict(parameters))
        except ValidationError as exc:
            errors = [
                {
                    "loc": ["body", "parameters", *[str(part) for part in err["loc"]]],
                    "msg": err["msg"],
                    "type": err["type"],
                }
                for err in exc.errors(include_url=False, include_context=False, include_input=False)
            ]
            raise InvalidParametersError(self.name, errors) from None
        return model.model_dump(mode="json", by_alias=True, exclude_none=True)

    def run(self, parameters: Mapping[str, Any], context: TaskContext) -> Any:
        return self.function(self.parameters_model.model_validate(dict(parameters)), context)

    def parameters_schema(self) -> dict[str, Any]:
        return self.parameters_model.model_json_schema()


class TaskRegistry:
    def __init__(self) -> None:
        self._types: dict[str, RegisteredTaskType] = {}

    def register(
        self,
        name: str,
        function: TaskFunction,
        parameters_model: type[BaseModel],
        *,
        description: str,
        queue: str = "default",
        timeout_seconds: int = 60,
        url_parameters: tuple[str, ...] = (),
        checkpoints: bool = False,
        runtime: Callable[[Any], float] | None = None,
        permanent_errors: tuple[type[BaseException], ...] = (ValueError, TypeError),
    ) -> None:
        """``permanent_errors``: what the type's code raises that another attempt cannot fix
        (by default ValueError and TypeError: a bad value from its own input); the domain's
        own (NonRetryableError, InvalidParametersError, ...) are never retried either."""
        if name in self._types:
            raise ValueError(f"task type {name!r} is already registered")
        self._types[name] = RegisteredTaskType(
            name,
            description,
            parameters_model,
            function,
            queue,
            timeout_seconds,
            url_parameters,
            checkpoints,
            runtime,
            permanent_errors,
        )

    def get(self, name: str) -> RegisteredTaskType:
        try:
            return self._types[name]
        except KeyError:
            raise UnknownTaskTypeError(name, self.names()) from None

    def names(self) -> list[str]:
        return sorted(self._types)

    def all(self) -> list[RegisteredTaskType]:
        return [self._types[n] for n in self.names()]


# The built-in task types: modules of this package, each with a ``register(registry)``.
# Adding a type: a module here and its name in this tuple.
BUILTIN_TYPES = ("sleep", "prime", "fibonacci", "sum", "range_sum", "message", "http_request", "fail")


def build_registry(modules: tuple[str, ...] = BUILTIN_TYPES) -> TaskRegistry:
    """A registry with the given task-type modules registered (explicitly, when called)."""
    import importlib

    registry = TaskRegistry()
    for name in modules:
        importlib.import_module(f"{__package__}.{name}").register(registry)
    return registry
