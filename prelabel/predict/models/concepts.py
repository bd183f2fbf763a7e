"""Concept prompts for SAM 3: each label with the phrases that find it and the phrases that veto it.

A concept model is asked one short noun phrase at a time, so a label the model should find
under several names (``vehicle``: car, truck, bus) is several phrases, and a look-alike
(``person``, not a mannequin) is a negative phrase: its instances veto the label's
instances they cover. By default each class (the project's labels, through the label map)
is its own concept with itself as the one phrase; a prompts file (or the same mapping
inline) replaces or adds concepts:

    vehicle: [car, truck, bus]
    person:
      phrases: [person]
      negatives: [mannequin, statue]

Thresholds can differ per label or per phrase (``threshold.person=0.5``); a phrase takes
its own, else its label's, else the model's. No torch here: options are checked when the
adapter is made (the command line, before any flow starts).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from prelabel.core.errors import SettingsError

__all__ = ["Concept", "build_concepts", "load_prompts", "phrase_thresholds"]

_MAX_BYTES = 1_000_000


@dataclass(frozen=True)
class Concept:
    """A label, the phrases that find its instances, and the phrases whose instances veto them."""

    label: str
    phrases: tuple[str, ...]
    negatives: tuple[str, ...] = ()

    def as_json(self) -> list[Any]:
        """The concept as the cache signature holds it."""
        return [self.label, list(self.phrases), list(self.negatives)]


def _phrase(text: Any, where: str) -> str:
    if not isinstance(text, str) or not " ".join(text.split()):
        raise SettingsError(f"{where}: a phrase must be a non-empty string, got {text!r}")
    return " ".join(text.split())


def _phrases(value: Any, where: str) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list | tuple) or not items:
        raise SettingsError(f"{where}: give a phrase or a list of phrases, got {value!r}")
    return tuple(dict.fromkeys(_phrase(item, where) for item in items))


def _yaml(text: str) -> Any:
    """YAML without aliases (a few hundred bytes of nested aliases expand to billions of entries)."""
    if any(isinstance(event, yaml.AliasEvent) for event in yaml.parse(text, Loader=yaml.SafeLoader)):
        raise ValueError("YAML aliases (*name) are not allowed in a prompts file")
    return yaml.safe_load(text)


def load_prompts(source: str | Mapping[str, Any], name: str = "sam3 prompts") -> list[Concept]:
    """Concepts from a prompts file (YAML or JSON) or the same mapping given inline.

    Each entry is ``label: phrase``, ``label: [phrases]`` or ``label: {phrases: [...],
    negatives: [...]}``.
    """
    data: Any = source
    if isinstance(source, str):
        path = Path(source).expanduser()
        try:
            if path.stat().st_size > _MAX_BYTES:
                raise SettingsError(f"{name} {path}: larger than {_MAX_BYTES:,} bytes")
            text = path.read_text(encoding="utf-8-sig")
            data = json.loads(text) if path.suffix.lower() == ".json" else _yaml(text)
        except (OSError, UnicodeDecodeError, ValueError, yaml.YAMLError) as exc:
            raise SettingsError(f"{name} {path}: cannot read ({str(exc)[:200]})") from exc
        name = f"{name} {path}"
    if not isinstance(data, Mapping) or not data:
        raise SettingsError(f"{name}: expected label: [phrases] entries, got {type(data).__name__}")
    concepts = []
    for label, entry in data.items():
        where = f"{name}, label {label!r}"
        label_text = _phrase(label, where)
        if isinstance(entry, Mapping):
            unknown = set(entry) - {"phrases", "negatives"}
            if unknown:
                raise SettingsError(f"{where}: unknown key {sorted(unknown)[0]!r} (phrases, negatives)")
            phrases = _phrases(entry.get("phrases", label_text), where)
            negatives = _phrases(entry["negatives"], where) if entry.get("negatives") else ()
        else:
            phrases, negatives = _phrases(entry, where), ()
        concepts.append(Concept(label_text, phrases, negatives))
    return concepts


def build_concepts(classes: Sequence[str], prompts: Sequence[Concept]) -> list[Concept]:
    """The prompts' concepts, then each class they neither label nor prompt (as its own phrase):
    with the label map ``car -> vehicle`` the project's ``vehicle`` arrives as the class ``car``,
    which a prompts entry ``vehicle: [car, truck]`` already asks for.

    A phrase may find one label only and cannot also be a negative: the detections it
    finds would have no single meaning.
    """
    concepts = list(prompts)
    covered = {c.label for c in concepts} | {p for c in concepts for p in c.phrases}
    concepts += [Concept(name, (name,)) for name in dict.fromkeys(classes) if name not in covered]
    owner: dict[str, str] = {}
    for concept in concepts:
        for phrase in concept.phrases:
            if owner.setdefault(phrase, concept.label) != concept.label:
                raise SettingsError(
                    f"the phrase {phrase!r} finds both {owner[phrase]!r} and {concept.label!r}; "
                    "give it to one label"
                )
    for concept in concepts:
        for phrase in concept.negatives:
            if phrase in owner:
                raise SettingsError(
                    f"{phrase!r} is a phrase of {owner[phrase]!r} and a negative of {concept.label!r}"
                )
    return concepts


def phrase_thresholds(
    concepts: Sequence[Concept], default: float, thresholds: Mapping[str, float]
) -> dict[str, float]:
    """Each phrase's score threshold (negatives too): its own, else its label's, else ``default``.

    A key that names no label or phrase is an error that lists the names (a misspelt label
    would silently keep the default)."""
    names = {c.label for c in concepts} | {p for c in concepts for p in (*c.phrases, *c.negatives)}
    unknown = sorted(set(thresholds) - names)
    if unknown:
        raise SettingsError(
            f"threshold.{unknown[0]}: no label or phrase {unknown[0]!r}; known: {', '.join(sorted(names))}"
        )
    out: dict[str, float] = {}
    for concept in concepts:
        for phrase in (*concept.phrases, *concept.negatives):
            out[phrase] = float(thresholds.get(phrase, thresholds.get(concept.label, default)))
    return out
