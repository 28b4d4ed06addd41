"""Contract checks at the sink's rate: msgspec decoders derived from the pydantic contracts.

The pydantic models stay the one definition of every contract. `model_validate_json` builds
a model instance per box and per bbox, field by field: in a sink process (its collector
tuned for batches) a FrameDetections payload of ~10 boxes took 78-87 us, the largest share of
the sink's CPU per message. The derived decoder took 29-31 us on the same payloads, the
model's own validators included. So `FastDecoder` derives a msgspec Struct per model from
its fields (types, bounds, lengths, patterns, defaults, unknown fields refused), reads aware
times in the one spelling producers write, and runs the model's `mode="after"` validators
on each decoded record.

What the derived decoder refuses goes to `Event.from_bytes`: pydantic has the last word on
what is refused and why (the dead letter's reason), and it still accepts what its lax mode
accepts and msgspec does not (a number sent as a string). What the derived decoder accepts,
pydantic must accept with the same values: that is the invariant, checked in the tests
against the golden examples and mutants of them. Derivation refuses, at import, any field
or validator it cannot mirror exactly or more strictly, so a new contract feature cannot
slip past it unnoticed.
"""

from __future__ import annotations

import datetime as dt
import types
import typing
from collections.abc import Callable
from typing import Annotated, Any, Generic, Literal, TypeVar

import annotated_types
import msgspec
from pydantic import AwareDatetime, BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from schemas._base import Event

E = TypeVar("E", bound=Event)

_BOUNDS = {
    annotated_types.Ge: "ge",
    annotated_types.Gt: "gt",
    annotated_types.Le: "le",
    annotated_types.Lt: "lt",
    annotated_types.MinLen: "min_length",
    annotated_types.MaxLen: "max_length",
}
_PLAIN = (str, int, float, bool)
# model settings that change nothing a payload is checked against
_NEUTRAL_SETTINGS = {"extra", "frozen", "title", "json_schema_extra", "defer_build"}
# An aware time as producers write it (RFC 3339, to the microsecond at most). msgspec's own
# datetime rounds a 7th decimal where pydantic truncates it, so times are read as text of this
# form and parsed by `datetime.fromisoformat`; any other spelling is left to pydantic.
_AWARE_TIME = Annotated[
    str,
    msgspec.Meta(
        pattern=r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?"
        r"(Z|[+-][0-9]{2}:[0-9]{2})\Z"
    ),
]


class FastDecoder(Generic[E]):
    """Decodes payloads of one contract: to a read-only record with the contract's fields,
    a Struct mirroring it (or the pydantic instance itself where pydantic decided)."""

    def __init__(self, contract: type[E]) -> None:
        self.contract = contract
        self._decoder = msgspec.json.Decoder(derived_struct(contract))

    def decode(self, payload: bytes | None) -> Any:
        """The payload's record; raises `ContractError` exactly as `contract.from_bytes`."""
        record = None if payload is None else self.decode_fast(payload)
        return self.contract.from_bytes(payload) if record is None else record

    def decode_fast(self, payload: bytes) -> Any | None:
        """The derived decoder's record, or None where it leaves the payload to pydantic."""
        try:
            return self._decoder.decode(payload)
        except Exception:  # a validator's own error too: pydantic decides
            return None


_STRUCTS: dict[type[BaseModel], type[msgspec.Struct]] = {}


def derived_struct(model: type[BaseModel]) -> type[msgspec.Struct]:
    """The msgspec Struct that checks what `model` checks (built once per model)."""
    if model not in _STRUCTS:
        _STRUCTS[model] = _derive(model)
    return _STRUCTS[model]


def _derive(model: type[BaseModel]) -> type[msgspec.Struct]:
    settings = set(model.model_config) - _NEUTRAL_SETTINGS
    if settings:  # str_strip_whitespace and the like change what is accepted, or its value
        raise TypeError(f"{model.__name__}: model settings {sorted(settings)} cannot be mirrored")
    extra = model.model_config.get("extra")
    if extra not in ("forbid", "ignore", None):
        raise TypeError(f"{model.__name__}: extra={extra!r} cannot be mirrored")
    fields = [_field(model, name, info) for name, info in model.model_fields.items()]
    times = [name for name, info in model.model_fields.items() if _is_time(info.annotation)]
    validators = _after_validators(model)
    namespace: dict[str, Any] = {}
    if times or validators:
        namespace["__post_init__"] = _completing(times, validators)
    return msgspec.defstruct(
        f"{model.__name__}Record",
        fields,
        namespace=namespace,
        kw_only=True,
        frozen=True,
        forbid_unknown_fields=extra == "forbid",
    )


def _field(model: type[BaseModel], name: str, info: FieldInfo) -> tuple[Any, ...]:
    if info.alias not in (None, name) or info.validation_alias not in (None, name):
        raise TypeError(f"{model.__name__}.{name}: aliases cannot be mirrored")
    if _is_time(info.annotation):  # read as text, parsed by __post_init__
        plain = _AWARE_TIME if info.annotation is AwareDatetime else _AWARE_TIME | None
    else:
        plain = _type(info.annotation)
    annotation = _with_constraints(plain, info.metadata, f"{model.__name__}.{name}")
    if info.default_factory is not None:
        factory = typing.cast(Callable[[], Any], info.default_factory)
        return name, annotation, msgspec.field(default_factory=factory)
    if info.default is not PydanticUndefined:
        return name, annotation, info.default
    return name, annotation


def _type(annotation: Any) -> Any:
    """The msgspec type for a field's annotation, its constraints aside."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if annotation in _PLAIN or annotation is type(None):
        return annotation
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return derived_struct(annotation)
    if origin is Literal and all(isinstance(a, str | int) for a in args):
        return annotation
    if origin in (types.UnionType, typing.Union):
        return _union(tuple(_type(a) for a in args))
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        return tuple[_type(args[0]), ...]  # type: ignore[misc]
    if origin is dict and args[0] is str:
        return dict[str, _type(args[1])]  # type: ignore[misc]
    raise TypeError(f"no derived decoder for {annotation!r}")


def _is_time(annotation: Any) -> bool:
    """An aware time or an optional one: the fields `__post_init__` parses."""
    if annotation is AwareDatetime:
        return True
    args = typing.get_args(annotation)
    return typing.get_origin(annotation) is types.UnionType and set(args) == {
        AwareDatetime,
        type(None),
    }


def _union(members: tuple[Any, ...]) -> Any:
    union = members[0]
    for member in members[1:]:
        union = union | member
    return union


def _with_constraints(annotation: Any, metadata: list[Any], where: str) -> Any:
    """Wraps the type in the field's bounds, lengths and pattern. pydantic puts the
    constraints of an optional field on its non-null member; so does this."""
    meta: dict[str, Any] = {}
    for item in metadata:
        if type(item) in _BOUNDS:
            key = _BOUNDS[type(item)]
            meta[key] = getattr(item, key)
        elif _only_pattern(item):
            meta["pattern"] = _python_pattern(item.pattern)
        else:
            raise TypeError(f"{where}: constraint {item!r} cannot be mirrored")
    if not meta:
        return annotation
    constrained = msgspec.Meta(**meta)
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) is types.UnionType and type(None) in args:
        inner = [a for a in args if a is not type(None)]
        if len(inner) != 1:
            raise TypeError(f"{where}: constraints on a union cannot be mirrored")
        return Annotated[inner[0], constrained] | None
    return Annotated[annotation, constrained]


def _only_pattern(item: Any) -> bool:
    """pydantic's general metadata carrying a pattern and nothing else."""
    if type(item).__name__ != "_PydanticGeneralMetadata":
        return False
    return set(vars(item)) == {"pattern"} and isinstance(item.pattern, str)


def _python_pattern(pattern: str) -> str:
    """The pattern for Python's `re` as pydantic's Rust engine reads it: a final `$` ends the
    text there, where in Python it also matches before a trailing newline."""
    escapes = len(pattern[:-1]) - len(pattern[:-1].rstrip("\\"))
    if pattern.endswith("$") and escapes % 2 == 0:  # `\\$` ends too, `\$` is a dollar
        return pattern[:-1] + r"\Z"
    return pattern


def _after_validators(model: type[BaseModel]) -> list[Callable[[Any], Any]]:
    decorators = model.__pydantic_decorators__
    others = (
        decorators.validators,
        decorators.field_validators,
        decorators.root_validators,
        decorators.computed_fields,
    )
    if any(others) or model.__pydantic_post_init__ is not None:
        raise TypeError(
            f"{model.__name__}: validators other than mode='after' model validators "
            "cannot be mirrored"
        )
    validators = []
    for decorator in decorators.model_validators.values():
        if decorator.info.mode != "after":
            raise TypeError(
                f"{model.__name__}.{decorator.cls_var_name} cannot be mirrored: not mode='after'"
            )
        validators.append(decorator.func)
    return validators


def _completing(times: list[str], validators: list[Callable[[Any], Any]]) -> Callable[[Any], Any]:
    """The record's `__post_init__`: its times parsed, then the model's validators run (an
    error in either makes msgspec refuse the payload, and pydantic has it)."""
    if not times and len(validators) == 1:
        # the validator itself (msgspec ignores what it returns): one Python call less per
        # record, which counts for boxes, ~10 in each frame
        return validators[0]

    def __post_init__(self: Any) -> None:
        for name in times:
            text = getattr(self, name)
            if text is not None:
                msgspec.structs.force_setattr(self, name, dt.datetime.fromisoformat(text))
        for validator in validators:
            validator(self)

    return __post_init__
