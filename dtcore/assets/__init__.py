"""Offline assets: D4RL-like datasets rolled out from behaviour policies, and small language- and
image-pretrained backbones, each built once into the asset cache (``DTCORE_CACHE``)."""

# Lazy re-exports, so that importing dtcore.assets.recipes (dtcore.profiles does) stays light.
_RESOLVE = ("resolve_weights", "resolve_dataset", "dataset_to_build", "weights_to_build", "check_paper_assets",
            "MissingAssetsError")


def __getattr__(name: str):
    if name in _RESOLVE:
        from dtcore.assets import resolve

        return getattr(resolve, name)
    raise AttributeError(f"module 'dtcore.assets' has no attribute {name!r}")
