"""firehook: the composition root (CLI, daemon) and the SDK that function authors import."""

__all__: list[str] = []
