"""Storage errors (all are GHNeRFError, so the CLI prints them as one line)."""

from ghnerf.base.errors import GHNeRFError


class ShardIntegrityError(GHNeRFError):
    """A shard file is missing, truncated or altered (its sha256 differs from the catalog's)."""


class SchemaMismatchError(GHNeRFError):
    """A Parquet file does not have the schema this code writes."""

    def __init__(self, path: str, expected, actual):
        super().__init__(f"{path}: schema mismatch; expected {expected}, found {actual}")


class StoreNotFoundError(GHNeRFError):
    """A command that only reads a storage root was given one that does not exist (nothing is created)."""


class StorageAccessError(GHNeRFError):
    """A storage root cannot be reached: credentials or endpoint missing, access denied, no such bucket."""


class CatalogDamagedError(GHNeRFError):
    """A catalog entry file is truncated or not a catalog entry; ``ghnerf distill`` with the same arguments
    repairs it (from its shard when the shard is intact, else by recomputing the shard)."""


class PartialTargetsError(GHNeRFError):
    """Some of the targets the catalog lists cannot be served (shard file missing, catalog entry damaged)."""
