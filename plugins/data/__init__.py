"""Built-in data modules: the photos a feed-forward method (method=fast) trains on."""
