"""Built-in transform nets for method=fast: image in, stylized image out, one forward pass."""
