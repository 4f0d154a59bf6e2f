"""A storage backend that keeps user media on the media tier (nginx WebDAV), never on a web node's disk."""
