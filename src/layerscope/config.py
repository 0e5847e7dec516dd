"""Checking a workflow config before any job runs.

:func:`validate_config` checks the config against the JSON schema in
``workflow/schemas/config.schema.yaml``, fills in the schema's defaults, and
then checks what a schema cannot: that every model source can be found and
every local text source has text. Each problem is one line that names the key.
"""

from __future__ import annotations

import copy
from pathlib import Path

import jsonschema
import yaml

from layerscope.models import ModelSourceError, resolve_source
from layerscope.texts import read_raw, select


class ConfigError(ValueError):
    """A config that the workflow cannot run."""


def _where(path) -> str:
    return ".".join(str(part) for part in path) or "(top level)"


def _resolve(schema: dict, root: dict) -> dict:
    while "$ref" in schema:
        ref = schema["$ref"]
        target = root
        for part in ref.lstrip("#/").split("/"):
            target = target[part]
        schema = {**target, **{k: v for k, v in schema.items() if k != "$ref"}}
    return schema


def _fill_defaults(value, schema: dict, root: dict):
    """Fill missing keys with the schema's defaults, recursively (in place)."""
    schema = _resolve(schema, root)
    if not isinstance(value, dict):
        return
    properties = schema.get("properties", {})
    for key, sub in properties.items():
        sub = _resolve(sub, root)
        if key not in value and "default" in sub:
            value[key] = copy.deepcopy(sub["default"])
        if key in value:
            _fill_defaults(value[key], sub, root)
    extra = schema.get("additionalProperties")
    if isinstance(extra, dict):
        for key in value:
            if key not in properties:
                _fill_defaults(value[key], extra, root)


def _schema_error_line(error: jsonschema.ValidationError) -> str:
    where = _where(error.absolute_path)
    if error.validator == "additionalProperties":
        unknown = sorted(set(error.instance) - set(error.schema.get("properties", {})))
        known = ", ".join(sorted(error.schema.get("properties", {})))
        return f"config: unknown key {unknown[0]!r} in {where} (known: {known})"
    if error.validator == "oneOf" and where.startswith("sources"):
        return f"config: {where} needs exactly one of builtin, path or dataset"
    return f"config: {where}: {error.message}"


def load_schema(path: str | Path) -> dict:
    return yaml.safe_load(Path(path).read_text())


def validate_config(config: dict, schema_path: str | Path) -> dict:
    """A checked copy of ``config`` with defaults filled in.

    Raises
    ------
    ConfigError
        With one line naming the first offending key.
    """
    schema = load_schema(schema_path)
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: list(e.absolute_path))
    if errors:
        deepest = jsonschema.exceptions.best_match(errors)
        raise ConfigError(_schema_error_line(deepest))

    config = copy.deepcopy(config)
    _fill_defaults(config, schema, schema)
    check_models(config)
    check_sources(config)
    check_metrics(config)
    return config


def check_models(config: dict) -> None:
    for name, spec in config["models"].items():
        try:
            resolve_source(spec["source"], spec.get("gguf_file"))
        except ModelSourceError as error:
            raise ConfigError(f"config: models.{name}.source: {error}") from None


def check_sources(config: dict) -> None:
    """Local sources (builtin corpora, files) must exist and hold text."""
    for name, spec in config.get("sources", {}).items():
        if "dataset" in spec:
            continue  # hub datasets are read by their texts job
        try:
            raw = read_raw(spec)
        except ValueError as error:
            raise ConfigError(f"config: sources.{name}: {error}") from None
        if not select(raw, {**spec, "n": None})[1]:
            raise ConfigError(
                f"config: sources.{name}: no text left after dropping empty, short "
                f"and duplicate texts ({len(raw)} raw texts)"
            )


def check_metrics(config: dict) -> None:
    from layerscope.augment import AugmentConfig

    for name in config["metrics"]["sources"] or []:
        if name not in config["sources"]:
            raise ConfigError(
                f"config: metrics.sources: {name!r} is not a source "
                f"(sources: {', '.join(config['sources'])})"
            )
    try:
        AugmentConfig.from_dict(config["augment"]["recipe"])
    except ValueError as error:
        raise ConfigError(f"config: augment.recipe: {error}") from None
