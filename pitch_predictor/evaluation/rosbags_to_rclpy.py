"""
Copy rosbags message objects into rclpy message objects, field by field.

Generic over message types: the rclpy class is found from the rosbags ``__msgtype__``
(``sensor_msgs/msg/Image`` -> ``sensor_msgs.msg.Image``) and every field is copied
following the class's ``SLOT_TYPES``. Numeric sequences become ``array.array`` (which
rclpy stores without a per-element check, so a 960x540 image costs a memcpy), fixed
arrays become numpy arrays. Only the generated message modules are imported, not rclpy.
"""

from __future__ import annotations

import array
from functools import cache
import importlib
from typing import Any

import numpy as np

_TYPECODES = {
    'float': 'f', 'double': 'd', 'int8': 'b', 'uint8': 'B', 'int16': 'h', 'uint16': 'H',
    'int32': 'i', 'uint32': 'I', 'int64': 'q', 'uint64': 'Q',
}
_DTYPES = {
    'float': np.float32, 'double': np.float64, 'int8': np.int8, 'uint8': np.uint8,
    'int16': np.int16, 'uint16': np.uint16, 'int32': np.int32, 'uint32': np.uint32,
    'int64': np.int64, 'uint64': np.uint64, 'boolean': np.bool_, 'octet': np.uint8,
}


class ConversionError(TypeError):
    """A bag message whose type has no importable rclpy counterpart or that does not fit."""


@cache
def rclpy_message_class(msgtype: str) -> type:
    """Return the rclpy message class for ``pkg/msg/Name`` (or ``pkg/Name``)."""
    parts = msgtype.split('/')
    if len(parts) == 2:
        parts = [parts[0], 'msg', parts[1]]
    if len(parts) != 3:
        raise ConversionError(f'cannot parse message type {msgtype!r}')
    pkg, kind, name = parts
    try:
        module = importlib.import_module(f'{pkg}.{kind}')
        return getattr(module, name)
    except (ImportError, AttributeError) as exc:
        raise ConversionError(
            f'no Python message class for {msgtype!r} (is the {pkg} package installed?)'
        ) from exc


def to_rclpy(msg: Any, cls: type | None = None) -> Any:
    """Return an rclpy message holding the same field values as rosbags message ``msg``."""
    if cls is None:
        cls = rclpy_message_class(msg.__msgtype__)
    out = cls()
    from rosidl_parser import definition as idl

    for name, slot in zip(cls.get_fields_and_field_types(), cls.SLOT_TYPES):
        try:
            value = getattr(msg, name)
        except AttributeError as exc:
            raise ConversionError(f'{cls.__name__}: bag message has no field {name!r}') from exc
        setattr(out, name, _convert(value, slot, idl, f'{cls.__name__}.{name}'))
    return out


def _convert(value: Any, slot: Any, idl: Any, where: str) -> Any:
    if isinstance(slot, idl.NamespacedType):
        return to_rclpy(value, _namespaced_class(slot))
    if isinstance(slot, idl.AbstractSequence):
        inner = slot.value_type
        if isinstance(inner, idl.BasicType) and inner.typename in _TYPECODES:
            data = np.ascontiguousarray(value, dtype=_DTYPES[inner.typename])
            return array.array(_TYPECODES[inner.typename], data.tobytes())
        return [_convert(v, inner, idl, where) for v in value]
    if isinstance(slot, idl.Array):
        inner = slot.value_type
        if isinstance(inner, idl.BasicType) and inner.typename in _DTYPES:
            return np.array(value, dtype=_DTYPES[inner.typename])
        return [_convert(v, inner, idl, where) for v in value]
    if isinstance(slot, idl.BasicType):
        return _basic(value, slot.typename, where)
    if isinstance(slot, idl.AbstractGenericString):
        return str(value)
    raise ConversionError(f'{where}: unsupported field type {type(slot).__name__}')


def _basic(value: Any, typename: str, where: str) -> Any:
    if typename == 'boolean':
        return bool(value)
    if typename in ('float', 'double', 'long double'):
        return float(value)
    if typename == 'octet':
        return bytes([int(value)]) if not isinstance(value, bytes) else value
    if typename in ('char', 'wchar') and isinstance(value, str):
        return value
    try:
        return int(value)
    except (TypeError, ValueError) as exc:
        raise ConversionError(f'{where}: {value!r} is not a {typename}') from exc


def _namespaced_class(slot: Any) -> type:
    return rclpy_message_class('/'.join([*slot.namespaces, slot.name]))
