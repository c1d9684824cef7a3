"""Checking annotation records as they load: a bad record is skipped and counted by reason, or, in
strict mode, is an error naming the file, the record and the reason. One summary line per file."""
from __future__ import annotations

import os
from collections import Counter
from pathlib import Path


class BadRecordError(ValueError):
    pass


class RecordCheck:
    """Counts the records of one annotation file that were skipped, by reason."""

    def __init__(self, path, strict: bool = False):
        self.path, self.strict = Path(path), strict
        self.skipped: Counter = Counter()
        self.kept = 0

    def skip(self, record: str, reason: str) -> None:
        if self.strict:
            raise BadRecordError(f'{self.path}: {record}: {reason} (strict mode; without --strict it is skipped '
                                 'and counted)')
        self.skipped[reason] += 1

    def summary(self) -> str:
        line = f'{self.path.name}: {self.kept} instances'
        if self.skipped:
            n = sum(self.skipped.values())
            line += f', {n} skipped (' + ', '.join(f'{r}: {c}' for r, c in sorted(self.skipped.items())) + ')'
        return line

    def as_dict(self) -> dict:
        return dict(file=str(self.path), instances=self.kept, skipped=dict(sorted(self.skipped.items())))


def image_inside_root(image_root, name: str) -> str | None:
    """The image's path when `name` stays inside `image_root` (resolved: no `..` or absolute escape),
    else None."""
    root = os.path.realpath(image_root)
    path = os.path.realpath(os.path.join(root, name))
    return path if os.path.commonpath([root, path]) == root and path != root else None
