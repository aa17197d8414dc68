"""The catalog: manifests on disk, their model, discovery, the background loader and hot reload."""
