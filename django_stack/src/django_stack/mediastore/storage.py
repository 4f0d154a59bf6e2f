"""``MediaServerStorage``: uploads go to every media server over HTTP PUT, deletes over HTTP DELETE.

Settings: ``STACK_MEDIA_SERVERS`` (base URLs of the media servers' upload location, each ending with ``/``),
``MEDIA_URL`` (where browsers fetch media: through the load balancer), ``STACK_MEDIA_TIMEOUT`` (seconds).

Every media server gets every file (a write succeeds only when all of them took it), so any of them can serve
any file. Reads (``exists``, ``size``, ``open``) ask the first server that answers. Nothing is written to local
disk: uploads are kept in memory (settings use only Django's in-memory upload handler, with a size limit) and
sent from there.
"""

from __future__ import annotations

import io
import posixpath
import urllib.error
import urllib.request
from urllib.parse import quote, urljoin

from django.conf import settings
from django.core.exceptions import SuspiciousFileOperation
from django.core.files.base import File
from django.core.files.storage import Storage
from django.utils.deconstruct import deconstructible


class MediaServerError(OSError):
    """A media server refused or failed a request."""


@deconstructible
class MediaServerStorage(Storage):
    def __init__(self, servers=None, base_url=None, timeout=None):
        self._servers = servers
        self._base_url = base_url
        self._timeout = timeout

    @property
    def servers(self) -> list[str]:
        return list(self._servers or settings.STACK_MEDIA_SERVERS)

    @property
    def base_url(self) -> str:
        return self._base_url or settings.MEDIA_URL

    @property
    def timeout(self) -> float:
        return self._timeout or settings.STACK_MEDIA_TIMEOUT

    @staticmethod
    def _path(name: str) -> str:
        name = posixpath.normpath(name.replace("\\", "/")).lstrip("/")
        if name in ("", ".") or name.startswith("..") or "/../" in f"/{name}/":
            raise SuspiciousFileOperation(f"invalid media name {name!r}")
        return quote(name)

    def _request(self, server: str, method: str, name: str, data=None, headers=None):
        request = urllib.request.Request(
            urljoin(server, self._path(name)), data=data, method=method, headers=headers or {}
        )
        return urllib.request.urlopen(request, timeout=self.timeout)

    def _save(self, name, content):
        if hasattr(content, "seek"):
            content.seek(0)
        body = content.read()
        if isinstance(body, str):
            body = body.encode()
        for server in self.servers:
            try:
                with self._request(server, "PUT", name, data=body,
                                   headers={"Content-Type": "application/octet-stream"}):
                    pass
            except (urllib.error.URLError, OSError) as exc:
                raise MediaServerError(f"upload of {name} to {server} failed: {exc}") from exc
        return name

    def _open(self, name, mode="rb"):
        if "w" in mode or "a" in mode or "+" in mode:
            raise ValueError("media files are written with save(), not opened for writing")
        last = None
        for server in self.servers:
            try:
                with self._request(server, "GET", name) as response:
                    return File(io.BytesIO(response.read()), name=name)
            except urllib.error.HTTPError as exc:
                if exc.code == 404:
                    raise FileNotFoundError(name) from exc
                last = exc
            except (urllib.error.URLError, OSError) as exc:
                last = exc
        raise MediaServerError(f"no media server could serve {name}: {last}")

    def _head(self, name):
        last = None
        for server in self.servers:
            try:
                with self._request(server, "HEAD", name) as response:
                    return response
            except urllib.error.HTTPError as exc:
                if exc.code == 404:
                    return None
                last = exc
            except (urllib.error.URLError, OSError) as exc:
                last = exc
        raise MediaServerError(f"no media server answered for {name}: {last}")

    def exists(self, name):
        return self._head(name) is not None

    def size(self, name):
        response = self._head(name)
        if response is None:
            raise FileNotFoundError(name)
        return int(response.headers["Content-Length"])

    def delete(self, name):
        for server in self.servers:
            try:
                with self._request(server, "DELETE", name):
                    pass
            except urllib.error.HTTPError as exc:
                if exc.code != 404:
                    raise MediaServerError(f"delete of {name} on {server} failed: {exc}") from exc
            except (urllib.error.URLError, OSError) as exc:
                raise MediaServerError(f"delete of {name} on {server} failed: {exc}") from exc

    def url(self, name):
        return urljoin(self.base_url, self._path(name))

    def listdir(self, path):
        raise NotImplementedError("the media servers do not list directories")

    def path(self, name):
        raise NotImplementedError("media files have no local path: they live on the media servers")
