"""Datasets that are fast on HPC file systems: caches, HDF5 storage, mp4-in-HDF5 video, rank scattering.

Heavy dependencies (torch, h5py, av, lightning) load only when the name that needs them is first used, so
``import core.data`` is cheap. See ``core/data/README.md``.

- :class:`CachedDataset`: shared-memory RAM cache, one copy for all DataLoader workers.
- :class:`FileCachedDataset`: node-local disk cache that later runs reuse.
- :class:`RawHDF5Dataset`, :class:`HDF5Dataset`: one HDF5 group per sample, opened lazily per worker.
- :class:`HDF5Writer`: parallel, resumable writer of such files.
- :class:`VideoStore`, :func:`clip_sample`, :func:`convert_folder`: mp4 clips (and audio) in HDF5.
- :func:`scatter_dataset`, :func:`gather_results`: rank shards for training and exact evaluation.
- :class:`DataModule`: a Lightning DataModule over ready datasets.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from core.lazy import lazy_getattr

_EXPORTS = {
    "CachedDataset": "core.data.cache",
    "FileCachedDataset": "core.data.file_cache",
    "dataset_fingerprint": "core.data.file_cache",
    "RawHDF5Dataset": "core.data.hdf5",
    "HDF5Dataset": "core.data.hdf5",
    "HDF5Writer": "core.data.writer",
    "VideoStore": "core.data.video",
    "clip_sample": "core.data.video",
    "convert_folder": "core.data.video",
    "encode_mp4": "core.data.video",
    "decode_mp4": "core.data.video",
    "scatter_dataset": "core.data.scatter",
    "ScatteredDataset": "core.data.scatter",
    "gather_results": "core.data.scatter",
    "DataModule": "core.data.datamodule",
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:
    from core.data.cache import CachedDataset as CachedDataset
    from core.data.datamodule import DataModule as DataModule
    from core.data.file_cache import FileCachedDataset as FileCachedDataset
    from core.data.file_cache import dataset_fingerprint as dataset_fingerprint
    from core.data.hdf5 import HDF5Dataset as HDF5Dataset
    from core.data.hdf5 import RawHDF5Dataset as RawHDF5Dataset
    from core.data.scatter import ScatteredDataset as ScatteredDataset
    from core.data.scatter import gather_results as gather_results
    from core.data.scatter import scatter_dataset as scatter_dataset
    from core.data.video import VideoStore as VideoStore
    from core.data.video import clip_sample as clip_sample
    from core.data.video import convert_folder as convert_folder
    from core.data.video import decode_mp4 as decode_mp4
    from core.data.video import encode_mp4 as encode_mp4
    from core.data.writer import HDF5Writer as HDF5Writer


__getattr__ = lazy_getattr(__name__, _EXPORTS)
