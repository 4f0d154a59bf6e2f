"""Static files with hashed names (cacheable forever) and a gzip copy beside each compressible file.

uWSGI's offload threads serve ``name.gz`` to clients that accept gzip (``static-gzip-all``) without compressing
anything per request.
"""

import gzip
from pathlib import Path

from django.contrib.staticfiles.storage import ManifestStaticFilesStorage

COMPRESSIBLE = (".css", ".js", ".svg", ".txt", ".json", ".html", ".map", ".xml", ".ico")


class GzipManifestStaticFilesStorage(ManifestStaticFilesStorage):
    def post_process(self, paths, dry_run=False, **options):
        yield from super().post_process(paths, dry_run, **options)
        if dry_run:
            return
        for name in {*paths, *self.hashed_files.values()}:
            if not str(name).endswith(COMPRESSIBLE):
                continue
            source = Path(self.path(name))
            if not source.is_file():
                continue
            data = source.read_bytes()
            packed = gzip.compress(data, compresslevel=9, mtime=0)
            if len(packed) < len(data):
                Path(f"{source}.gz").write_bytes(packed)
