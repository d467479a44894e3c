"""Bridges to other libraries' registries (timm). Each is optional and loaded only when its library is."""
