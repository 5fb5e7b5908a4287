"""Model packages and checkpoint loaders (see `wavecraft.models.loaders`)."""
