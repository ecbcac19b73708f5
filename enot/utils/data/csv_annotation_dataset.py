"""`CsvAnnotationDataset`: images and integer labels listed in a CSV file."""

from __future__ import annotations

import csv
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from torch.utils.data import Dataset

from enot.utils.data._extra import import_extra

__all__ = ["CsvAnnotationDataset"]

PATH_COLUMN = "filepath"
LABEL_COLUMN = "label"


class CsvAnnotationDataset(Dataset):
    """Images listed in a CSV file with a header and the columns ``filepath`` and ``label``.

    Item ``i`` is ``(transform(image), label)``: the image opened with Pillow and converted to RGB
    (a ``PIL.Image`` when ``transform`` is ``None``), the label an ``int``.

    Args:
        csv_annotation_path: The CSV file.
        transform: Applied to each image (e.g. :func:`get_default_train_transform`).
        root_dir: Folder that relative paths of the CSV are resolved against (default: as written,
            relative to the working directory).

    Raises:
        FileNotFoundError: If the CSV file does not exist (an image that does not exist raises when read).
        ValueError: If the CSV lacks the two columns, has no rows, or a label is not an integer.
    """

    def __init__(
        self,
        csv_annotation_path: str | os.PathLike[str],
        transform: Callable[[Any], Any] | None = None,
        root_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        path = Path(csv_annotation_path)
        if not path.is_file():
            raise FileNotFoundError(f"CsvAnnotationDataset: no CSV file at {str(path)!r}")
        if transform is not None and not callable(transform):
            raise TypeError(f"CsvAnnotationDataset: transform must be callable, got {transform!r}")
        with path.open(newline="") as file:
            reader = csv.DictReader(file)
            columns = reader.fieldnames or []
            if PATH_COLUMN not in columns or LABEL_COLUMN not in columns:
                raise ValueError(f"CsvAnnotationDataset: {str(path)!r} must have the columns "
                                 f"{[PATH_COLUMN, LABEL_COLUMN]} in its header, found {columns}")
            rows = list(reader)
        if not rows:
            raise ValueError(f"CsvAnnotationDataset: {str(path)!r} lists no images")
        root = None if root_dir is None else Path(root_dir)
        self._paths: list[Path] = []
        self._labels: list[int] = []
        for line, row in enumerate(rows, start=2):
            try:
                label = int(row[LABEL_COLUMN])
            except (TypeError, ValueError):
                raise ValueError(f"CsvAnnotationDataset: {str(path)!r} line {line}: label must be an integer, "
                                 f"got {row[LABEL_COLUMN]!r}") from None
            file_path = Path(row[PATH_COLUMN])
            self._paths.append(file_path if root is None or file_path.is_absolute() else root / file_path)
            self._labels.append(label)
        self.transform = transform

    @property
    def labels(self) -> list[int]:
        """The labels in CSV order."""
        return list(self._labels)

    def __len__(self) -> int:
        return len(self._paths)

    def __getitem__(self, index: int) -> tuple[Any, int]:
        image_module = import_extra("PIL.Image", "CsvAnnotationDataset")
        with image_module.open(self._paths[index]) as image:
            image = image.convert("RGB")
        if self.transform is not None:
            image = self.transform(image)
        return image, self._labels[index]
