"""Model labels -> project labels.

A mapping file is a flat JSON or YAML object, ``{"car": "civilian vehicle"}``. Lookups
can ignore case, collapse whitespace and underscores, and fold plurals, each switched on
separately; the project's own labels are always valid targets of themselves, so a model
that already says ``civilian vehicle`` needs no entry. Every target must name a label of the
project (``require_targets``, before any work): one it lacks would post nothing, silently.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from prelabel.core.errors import LabelMapError
from prelabel.labelstudio.config import LabelConfig

__all__ = ["LabelMap", "Normalization", "checked_label_map", "load_label_map", "require_targets"]

_SPACES = re.compile(r"\s+")


@dataclass(frozen=True, slots=True)
class Normalization:
    """How model and project labels are compared. Defaults: case, spaces/underscores."""

    case: bool = True
    separators: bool = True
    plurals: bool = False

    def __call__(self, label: str) -> str:
        text = label.strip()
        if self.case:
            text = text.casefold()
        if self.separators:
            text = _SPACES.sub(" ", text.replace("_", " ").replace("-", " ")).strip()
        return text

    def variants(self, label: str) -> set[str]:
        """The forms ``label`` may match: itself, plus singular guesses of its last word."""
        text = self(label)
        if not self.plurals:
            return {text}
        head, _, last = text.rpartition(" ")
        prefix = f"{head} " if head else ""
        return {prefix + word for word in _singulars(last)}


def _singulars(word: str) -> set[str]:
    """The word and its possible English singulars ('buses' -> 'buse', 'bus')."""
    forms = {word}
    lower = word.casefold()
    if len(word) > 3 and lower.endswith("s") and not lower.endswith("ss"):
        forms.add(word[:-1])
        if lower.endswith("es"):
            forms.add(word[:-2])
        if lower.endswith("ies"):
            forms.add(word[:-3] + ("Y" if word[-3].isupper() else "y"))
    return forms


@dataclass(frozen=True)
class LabelMap:
    """Resolves a model label to one project label, or None when the project lacks it."""

    mapping: Mapping[str, str] = field(default_factory=dict)
    normalization: Normalization = field(default_factory=Normalization)

    def resolve(self, model_label: str, project_labels: Iterable[str]) -> str | None:
        """The project label for ``model_label``, or None (counted as unmatched upstream)."""
        labels = list(project_labels)
        index: dict[str, str] = {}
        for label in labels:  # the first project label wins a shared form
            for form in self.normalization.variants(label):
                index.setdefault(form, label)
        for candidate in (self._lookup(model_label), model_label):
            if candidate is None:
                continue
            if candidate in labels:
                return candidate
            for form in sorted(self.normalization.variants(candidate)):
                if form in index:
                    return index[form]
        return None

    def unknown_targets(self, project_labels: Iterable[str]) -> list[str]:
        """The targets that name none of ``project_labels`` (compared as lookups compare), in order."""
        forms = {form for label in project_labels for form in self.normalization.variants(label)}
        targets = dict.fromkeys(self.mapping.values())
        return [t for t in targets if not self.normalization.variants(t) & forms]

    def prompt_classes(self, project_labels: Iterable[str]) -> list[str]:
        """What to ask an open-vocabulary model for: per project label, the model labels
        mapped onto it (``car`` for ``civilian vehicle``), else the label itself."""
        classes: list[str] = []
        for label in project_labels:
            sources = [source for source, target in self.mapping.items() if target == label]
            classes += [c for c in sources or [label] if c not in classes]
        return classes

    def _lookup(self, model_label: str) -> str | None:
        if model_label in self.mapping:
            return self.mapping[model_label]
        key = self.normalization(model_label)
        for source, target in self.mapping.items():
            if self.normalization(source) == key:
                return target
        return None


_MAX_BYTES = 1_000_000
_LISTED = 20  # labels named in an error line


def require_targets(label_map: LabelMap, config: LabelConfig, source: str) -> None:
    """A ``LabelMapError`` (from ``source``) naming the first target that is no label or alias
    of ``config``'s image, the model labels mapped onto it, and the labels the project has."""
    unknown = label_map.unknown_targets(config.label_names)
    if not unknown:
        return
    target, labels = unknown[0], config.labels
    sources = ", ".join(repr(k) for k, v in label_map.mapping.items() if v == target)
    listed = ", ".join(labels[:_LISTED]) or "none"
    more = f" and {len(labels) - _LISTED} more" if len(labels) > _LISTED else ""
    raise LabelMapError(
        source, f"{target!r} (for {sources}) is not a label of the project; its labels: {listed}{more}"
    )


def _flat_yaml(text: str, name: str) -> object:
    """YAML without aliases or nesting past two levels (a 300-byte alias bomb expands to
    billions of entries when anything walks it); then parsed safely."""
    depth = 0
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, yaml.AliasEvent):
            raise LabelMapError(name, "YAML aliases (*name) are not allowed in a label map")
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > 2:
                raise LabelMapError(name, "nested too deep: a label map is a flat object of label -> label")
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1
    return yaml.safe_load(text)


def load_label_map(path: str | Path, normalization: Normalization | None = None) -> LabelMap:
    """Read a flat JSON (``.json``) or YAML (anything else) label-mapping file."""
    file = Path(path)
    try:
        if file.stat().st_size > _MAX_BYTES:
            raise LabelMapError(str(file), f"larger than {_MAX_BYTES:,} bytes: not a label map")
        text = file.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise LabelMapError(str(file), f"cannot read label map ({exc})") from exc
    try:
        data = json.loads(text) if file.suffix.lower() == ".json" else _flat_yaml(text, str(file))
    except (ValueError, RecursionError, yaml.YAMLError) as exc:
        raise LabelMapError(
            str(file), f"not valid {'JSON' if file.suffix == '.json' else 'YAML'}: {str(exc)[:200]}"
        ) from exc
    if data is None:
        data = {}
    return checked_label_map(data, str(file), normalization)


def checked_label_map(data: Any, source: str, normalization: Normalization | None = None) -> LabelMap:
    """``data`` (from ``source``: a file, a flow parameter) as a label map, or a
    ``LabelMapError`` naming the first bad entry."""
    if not isinstance(data, dict):
        raise LabelMapError(source, f"must be a flat object of label -> label, got {type(data).__name__}")
    bad = [
        f"{str(k)[:40]!r}: {str(v)[:40]!r}"
        for k, v in data.items()
        if not isinstance(k, str) or not isinstance(v, str)
    ]
    if bad:
        listed = ", ".join(bad[:5])
        raise LabelMapError(source, f"every key and value must be a string; bad entries: {listed}")
    empty = [k for k, v in data.items() if not k.strip() or not v.strip()]
    if empty:  # "car": "" read as "leave car out" would post car still (the model label's own fallback)
        raise LabelMapError(
            source, f"{empty[0]!r}: an empty label maps nothing (labels the project lacks are never posted)"
        )
    norm = normalization or Normalization()
    seen: dict[str, str] = {}
    for label in data:
        key = norm(label)
        if key in seen and data[seen[key]] != data[label]:
            raise LabelMapError(
                source, f"{seen[key]!r} and {label!r} normalise alike but map to different labels"
            )
        seen[key] = label
    return LabelMap(mapping=dict(data), normalization=norm)
