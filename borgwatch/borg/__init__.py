"""The borg layer: argv building, environment, process, event stream. Version differences live here."""
