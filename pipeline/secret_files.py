"""Secrets read from files, refused when others could read them.

For every secret setting (a ``SecretStr`` field, and ``es_password``) a value may come from a file:

- ``EARSHOT_<FIELD>_FILE=/path/to/file`` names the file (Docker and Kubernetes style), or
- ``EARSHOT_SECRETS_DIR=/run/secrets`` holds one file per secret, named ``<field>`` or
  ``EARSHOT_<FIELD>`` (the pydantic-settings ``secrets_dir`` layout).

The file's content, stripped of surrounding whitespace, is the value. A file readable or
writable by its group or by others (any of mode ``0o077``) is refused with an error that names
it: a secret on a shared host must not leak through a careless ``chmod``. Kubernetes secret
volumes need ``defaultMode: 0400`` for this. A value in the environment itself wins over a file.
"""

from __future__ import annotations

import os
import stat
import typing
from pathlib import Path
from typing import Any

from pydantic import SecretStr
from pydantic.fields import FieldInfo
from pydantic_settings import PydanticBaseSettingsSource

PLAIN_SECRETS = frozenset({"es_password"})  # secrets typed as plain str for their clients


class InsecureSecretFile(ValueError):
    pass


def check_secret_file(path: Path) -> None:
    """Raise ``InsecureSecretFile`` unless ``path`` is a regular file only its owner may read or write."""
    info = path.stat()  # follows symlinks: Kubernetes mounts secrets as links to the real files
    if not stat.S_ISREG(info.st_mode):
        raise InsecureSecretFile(f"secret file {path} is not a regular file")
    if info.st_mode & 0o077:
        raise InsecureSecretFile(f"secret file {path} has mode {stat.S_IMODE(info.st_mode):04o}: group or others "
                                 f"may access it; run 'chmod 600 {path}' (or 400)")


def read_secret_file(path: Path) -> str:
    check_secret_file(path)
    return path.read_text(encoding="utf-8").strip()


def is_secret(name: str, field: FieldInfo) -> bool:
    annotation = field.annotation
    return name in PLAIN_SECRETS or annotation is SecretStr or SecretStr in typing.get_args(annotation)


def secret_file_for(name: str, environ: typing.Mapping[str, str]) -> Path | None:
    """The file a secret setting is read from, if one is configured (and, in the folder, exists)."""
    named = environ.get(f"EARSHOT_{name.upper()}_FILE")
    if named:
        return Path(named)
    folder = environ.get("EARSHOT_SECRETS_DIR")
    if folder:
        for candidate in (Path(folder) / name, Path(folder) / f"EARSHOT_{name.upper()}"):
            if candidate.exists():
                return candidate
    return None


class SecretFilesSource(PydanticBaseSettingsSource):
    """The pydantic-settings source for the files above (after init arguments, environment and .env)."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        path = secret_file_for(field_name, os.environ) if is_secret(field_name, field) else None
        return (read_secret_file(path) if path else None), field_name, False

    def __call__(self) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for name, field in self.settings_cls.model_fields.items():
            value, _, _ = self.get_field_value(field, name)
            if value is not None:
                values[name] = value
        return values
