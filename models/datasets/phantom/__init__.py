"""The SYNTHETIC phantom: chest-radiograph-like images with CheXpert findings, boxes, reports and
simulated radiologist gaze. Nothing here is a real patient; every output says so.

Public API:
    generate_store(root, n, seed, ...) -> Path     write a CaseStore of phantom cases
    generate_case(seed, index, ...) -> (Case, image)
    simulate_reading(case, image_size, reader_seed, ...) -> list[Fixation]
    ReaderStyle.from_seed(seed)
"""

from models.datasets.phantom.generate import DATASET_NAME, generate_case, generate_store
from models.datasets.phantom.reader import ReaderStyle, simulate_reading, simulate_readers

__all__ = ["DATASET_NAME", "ReaderStyle", "generate_case", "generate_store", "simulate_reading", "simulate_readers"]
