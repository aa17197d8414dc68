"""Evolution: a model rewrites a tool; the candidate is validated in a sandbox, reviewed by a person, promoted."""
