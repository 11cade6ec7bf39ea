"""DVC 3 pointer files (``revisions/<name>.dvc``), read without the ``dvc`` package.

nlmr accepts the subset ``dvc add`` writes for one directory; the schema in
schemas/dvc-pointer.schema.json enforces it. This module gives the typed form
and checks a pointer against the manifest it must agree with.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from nlmr.manifest import Manifest


@dataclass(frozen=True)
class DvcPointer:
    """The one output of a registry pointer.

    Attributes:
        md5: the directory object's md5 with DVC's ``.dir`` suffix.
        size: total bytes of the files.
        nfiles: number of files.
        path: the output directory relative to the pointer (the revision name).
    """

    md5: str
    size: int
    nfiles: int
    path: str

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DvcPointer:
        out = data["outs"][0]
        return cls(
            md5=out["md5"], size=int(out["size"]), nfiles=int(out["nfiles"]), path=out["path"]
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "outs": [
                {
                    "md5": self.md5,
                    "size": self.size,
                    "nfiles": self.nfiles,
                    "hash": "md5",
                    "path": self.path,
                }
            ]
        }

    def to_yaml(self) -> str:
        """The pointer file's text, byte for byte what ``dvc add`` writes."""
        return (
            "outs:\n"
            f"- md5: {self.md5}\n"
            f"  size: {self.size}\n"
            f"  nfiles: {self.nfiles}\n"
            "  hash: md5\n"
            f"  path: {self.path}\n"
        )

    @classmethod
    def for_manifest(cls, manifest: Manifest, path: str) -> DvcPointer:
        """The pointer DVC would write for the manifest's file set at ``path``."""
        return cls(
            md5=manifest.dvc_dir_md5(),
            size=manifest.total_size,
            nfiles=len(manifest.files),
            path=path,
        )

    def disagreements(self, manifest: Manifest) -> list[tuple[str, str]]:
        """``(field, message)`` for each way the pointer contradicts the manifest."""
        expected = DvcPointer.for_manifest(manifest, self.path)
        out = []
        if self.md5 != expected.md5:
            out.append(
                (
                    "md5",
                    f"directory md5 {self.md5} does not match the manifest's file set "
                    f"({expected.md5}); regenerate both with `nlmr add`",
                )
            )
        if self.size != expected.size:
            out.append(("size", f"size {self.size} != {expected.size}, the manifest's total"))
        if self.nfiles != expected.nfiles:
            out.append(
                ("nfiles", f"nfiles {self.nfiles} != {expected.nfiles} files in the manifest")
            )
        return out
