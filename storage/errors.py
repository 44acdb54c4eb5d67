"""Storage errors (all are GHNeRFError, so the CLI prints them as one line)."""

from ghnerf.errors import GHNeRFError


class ShardIntegrityError(GHNeRFError):
    """A shard file is missing, truncated or altered (its sha256 differs from the catalog's)."""


class SchemaMismatchError(GHNeRFError):
    """A Parquet file does not have the schema this code writes."""

    def __init__(self, path: str, expected, actual):
        super().__init__(f"{path}: schema mismatch; expected {expected}, found {actual}")
