"""Target storage: Parquet shard schema, shard writer/reader, and the lineage catalog."""
