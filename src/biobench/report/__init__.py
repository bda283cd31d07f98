"""`biobench report`: the results as a static site (site.py) or served live (serve.py), built
from the same functions as `biobench compare` (model.py)."""
