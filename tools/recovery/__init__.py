"""Recovery: the failure ledger and its rules, circuits, operator controls, candidate selection, resilient calls."""
