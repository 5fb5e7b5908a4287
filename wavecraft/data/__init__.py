"""Training data: manifests (audiocraft's data.jsonl format), segment datasets, captions, token caches.

The dataset builders (`build_*`) that make corpora from offline sources live beside these modules.
"""
from .captions import CaptionConfig, build_caption
from .dataset import DataConfig, SegmentDataset, make_loader
from .manifest import AudioMeta, ManifestError, index_directory, read_manifest, write_manifest

__all__ = [
    "AudioMeta", "CaptionConfig", "DataConfig", "ManifestError", "SegmentDataset", "build_caption",
    "index_directory", "make_loader", "read_manifest", "write_manifest",
]
