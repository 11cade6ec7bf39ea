"""Object stores holding DVC's object layout: a local directory or an S3-compatible bucket.

``files/md5/<2 hex>/<30 hex>`` for file objects and ``….dir`` for directory
objects, exactly as DVC 3 lays out a remote, so the same store serves ``dvc pull``.
"""

from __future__ import annotations

from nlmr.store.base import ObjectStore, Upload, UploadResult, dir_key, file_key, open_store

__all__ = ["ObjectStore", "Upload", "UploadResult", "dir_key", "file_key", "open_store"]
