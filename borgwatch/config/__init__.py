"""Configuration: schema (single source of truth), loader and reference generator."""
