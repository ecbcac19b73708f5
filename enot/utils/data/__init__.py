"""Image datasets and dataloaders at ENOT 2.x's import paths.

``csv_annotation_dataset.CsvAnnotationDataset`` reads images listed in a CSV file;
``dataloaders`` makes ``DataLoader`` s and the default torchvision transforms.  Images need Pillow and
the transforms torchvision: the optional extra ``pip install 'enot-open-nas[data]'``.  Nothing here
imports torchvision until a transform is asked for.
"""

from enot.utils.data.csv_annotation_dataset import CsvAnnotationDataset
from enot.utils.data.dataloaders import (
    create_data_loader,
    create_data_loader_from_csv_annotation,
    get_default_train_transform,
    get_default_validation_transform,
)

__all__ = [
    "CsvAnnotationDataset",
    "create_data_loader",
    "create_data_loader_from_csv_annotation",
    "get_default_train_transform",
    "get_default_validation_transform",
]
