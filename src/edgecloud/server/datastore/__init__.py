"""Image datastores on the front-end: the bytes of images, and the jobs that import them."""
