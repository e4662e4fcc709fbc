"""Example models and the recipes that compress them (see models/README.md)."""
