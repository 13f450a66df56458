"""A backend module whose import fails, as a half-installed vendor package would."""

raise ImportError("libfakevendor.so: cannot open shared object file")
