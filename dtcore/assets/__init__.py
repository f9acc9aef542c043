"""Offline assets: D4RL-like datasets rolled out from behaviour policies, and small language- and
image-pretrained backbones, each built once into the asset cache (``DTCORE_CACHE``)."""
