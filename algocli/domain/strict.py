"""The base of every model a run definition is read into: numbers must be written as numbers."""

from __future__ import annotations

import typing

from pydantic import BaseModel, ConfigDict, ValidationInfo, field_validator


class NumbersModel(BaseModel):
    """A pydantic model whose number fields take no ``true``/``false`` and no infinity.

    Pydantic's lax mode reads YAML's ``true`` as 1 for an ``int`` or ``float`` field, and ``.inf``
    passes a ``gt=0`` check; a typo like ``quantity: true`` or ``initial_capital: .inf`` would run
    on a value the trader never wrote.
    """

    model_config = ConfigDict(allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_for_a_number(cls, value: typing.Any, info: ValidationInfo) -> typing.Any:
        if isinstance(value, bool) and info.field_name is not None:
            field = cls.model_fields.get(info.field_name)
            if field is not None and _numeric(field.annotation):
                raise ValueError(f"{str(value).lower()} is not a number; write the number")
        return value


def _numeric(annotation: typing.Any) -> bool:
    """``int`` or ``float``, alone or with ``None``, and not also ``bool``."""
    if annotation in (int, float):
        return True
    args = typing.get_args(annotation)
    return bool(args) and bool not in args and any(a in (int, float) for a in args)


__all__ = ["NumbersModel"]
