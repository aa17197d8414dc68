"""How each kind of tool is run: a child process, a warm worker, in-process, or a model."""
