"""Spec extraction: a large document becomes sections and a budgeted summary."""
