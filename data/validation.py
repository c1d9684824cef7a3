"""Checking annotation records as they load: a bad record is skipped and counted by reason, or, in
strict mode, is an error naming the file, the record and the reason. The records mmpose's own
filter drops (a COCO crowd, num_keypoints 0) are counted too, never an error. One summary line per
file."""
from __future__ import annotations

import os
from collections import Counter
from pathlib import Path


class BadRecordError(ValueError):
    pass


class RecordCheck:
    """Counts the records of one annotation file that were skipped (bad) or filtered (mmpose's own
    filter: not person instances to learn from, nothing wrong with them), by reason."""

    def __init__(self, path, strict: bool = False):
        self.path, self.strict = Path(path), strict
        self.skipped: Counter = Counter()
        self.filtered: Counter = Counter()
        self.kept = 0

    def skip(self, record: str, reason: str) -> None:
        if self.strict:
            raise BadRecordError(f'{self.path}: {record}: {reason} (strict mode; without --strict it is skipped '
                                 'and counted)')
        self.skipped[reason] += 1

    def filter(self, reason: str) -> None:
        """A record mmpose's dataset drops as well: counted, even in strict mode no error."""
        self.filtered[reason] += 1

    def summary(self) -> str:
        line = f'{self.path.name}: {self.kept} instances'
        for counts, what in ((self.skipped, 'skipped'), (self.filtered, 'filtered as mmpose does')):
            if counts:
                line += f', {sum(counts.values())} {what} (' + ', '.join(
                    f'{r}: {c}' for r, c in sorted(counts.items())) + ')'
        return line

    def as_dict(self) -> dict:
        return dict(file=str(self.path), instances=self.kept, skipped=dict(sorted(self.skipped.items())),
                    filtered=dict(sorted(self.filtered.items())))


def image_inside_root(image_root, name: str) -> str | None:
    """The image's path when `name` stays inside `image_root` (resolved: no `..` or absolute escape),
    else None."""
    root = os.path.realpath(image_root)
    path = os.path.realpath(os.path.join(root, name))
    return path if os.path.commonpath([root, path]) == root and path != root else None
